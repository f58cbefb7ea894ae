"""core.analytics against figures worked out by hand on a fixed trade list.

The trade list (starting equity 10,000 USDT; every time UTC, day 1 = 2026-01-05):

  fill  order  day time      symbol  side  amount  price  fee   liq    position after
  F1    O1     1  09:00:00   BTC     buy   1       100    1     taker  +1    (trip 1 long opens)
  F2    O2     1  10:00:00   BTC     sell  0.5     110    0.5   maker  +0.5  (partial close)
  F3a   O3     1  11:00:00   BTC     sell  1       120    1     taker  -0.5  (flip: trip 1 closes, trip 2 short opens)
  F3b   O3     1  11:00:30   BTC     sell  0.5     120    0.5   taker  -1
  F4    O4     2  10:00:00   BTC     buy   1       130    1     taker  0     (trip 2 closes)
  F5    O5     2  12:00:00   ETH     sell  2       50     0.2   maker  -2    (trip 3 short opens)
  F6    O6     3  12:00:00   ETH     buy   2       45     0.2   maker  0     (trip 3 closes)
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest

from core.analytics import Period, TradeRecorder, max_drawdown, sharpe, sortino
from core.models import Fill, Liquidity, Order, OrderStatus, OrderType, PositionSide, Side


def at(day: int, h: int, m: int = 0, s: int = 0, ms: int = 0) -> datetime:
    return datetime(2026, 1, 4 + day, h, m, s, ms * 1000, tzinfo=UTC)


def fill(fid: str, order_id: str, symbol: str, side: str, amount: str, price: str, fee: str, when: datetime,
         liquidity: str = "taker", account: str = "paper") -> Fill:
    return Fill(id=fid, order_id=order_id, client_order_id=order_id, account=account, symbol=symbol, side=Side(side),
                amount=D(amount), price=D(price), fee=D(fee), liquidity=Liquidity(liquidity), timestamp=when)


def order(oid: str, symbol: str, side: str, amount: str, mark: str | None, submitted: datetime | None,
          acked: datetime | None, type: str = "market", status: str = "filled") -> Order:
    return Order(id=oid, client_order_id=oid, symbol=symbol, side=Side(side), type=OrderType(type), amount=D(amount),
                 status=OrderStatus(status), created_at=submitted or at(1, 0), updated_at=submitted or at(1, 0),
                 submitted_at=submitted, acked_at=acked, submit_mark=D(mark) if mark else None)


FILLS = [
    fill("F1", "O1", "BTC/USDT", "buy", "1", "100", "1", at(1, 9)),
    fill("F2", "O2", "BTC/USDT", "sell", "0.5", "110", "0.5", at(1, 10), "maker"),
    fill("F3a", "O3", "BTC/USDT", "sell", "1", "120", "1", at(1, 11)),
    fill("F3b", "O3", "BTC/USDT", "sell", "0.5", "120", "0.5", at(1, 11, 0, 30)),
    fill("F4", "O4", "BTC/USDT", "buy", "1", "130", "1", at(2, 10)),
    fill("F5", "O5", "ETH/USDT", "sell", "2", "50", "0.2", at(2, 12), "maker"),
    fill("F6", "O6", "ETH/USDT", "buy", "2", "45", "0.2", at(3, 12), "maker"),
]
ORDERS = [
    # O1: market buy, sent at mark 99.9, acked 250 ms later; its fill came with the answer (09:00:00)
    order("O1", "BTC/USDT", "buy", "1", "99.9", at(1, 8, 59, 59, 750), at(1, 9)),
    # O2: limit sell resting 30 minutes, acked after 100 ms
    order("O2", "BTC/USDT", "sell", "0.5", "109", at(1, 9, 30), at(1, 9, 30, 0, 100), type="limit"),
    # O3: market sell in two fills, 30 s apart, acked after 200 ms
    order("O3", "BTC/USDT", "sell", "1.5", "120.5", at(1, 10, 59, 59, 800), at(1, 11)),
    # O4: market buy exactly at the mark, acked after 300 ms
    order("O4", "BTC/USDT", "buy", "1", "130", at(2, 9, 59, 59, 700), at(2, 10)),
    # O5: limit sell resting an hour, acked after 150 ms
    order("O5", "ETH/USDT", "sell", "2", "49.9", at(2, 11), at(2, 11, 0, 0, 150), type="limit"),
    # O6: limit buy resting a minute, acked after 200 ms
    order("O6", "ETH/USDT", "buy", "2", "45.1", at(3, 11, 59), at(3, 11, 59, 0, 200), type="limit"),
    # refused by risk: never submitted, so not part of execution quality
    order("O7", "BTC/USDT", "buy", "1", None, None, None, status="rejected"),
]


@pytest.fixture
def recorder() -> TradeRecorder:
    return TradeRecorder(FILLS, ORDERS, starting_equity=D(10_000))


def test_round_trips_with_a_partial_close_and_a_flip(recorder: TradeRecorder) -> None:
    t1, t2, t3 = recorder.report().trips
    # trip 1, long BTC: realized 0.5 x (110 - 100) = 5 on F2, then 0.5 x (120 - 100) = 10 on the flip F3a.
    # fees: F1 1 + F2 0.5 + the closing half of F3a (1 x 0.5/1 = 0.5) = 2; net 15 - 2 = 13
    assert (t1.symbol, t1.side, t1.opened_at, t1.closed_at) == ("BTC/USDT", PositionSide.LONG, at(1, 9), at(1, 11))
    assert (t1.realized, t1.fees, t1.pnl, t1.fills, t1.max_size) == (D(15), D(2), D(13), 3, D(1))
    assert (t1.entry_price, t1.exit_price) == (D(100), D(115))  # exits: 0.5 @ 110 + 0.5 @ 120
    # trip 2, short BTC, opened by the flip: 0.5 @ 120 (F3a) + 0.5 @ 120 (F3b), closed by F4 at 130:
    # realized 1 x (120 - 130) = -10; fees: opening half of F3a 0.5 + F3b 0.5 + F4 1 = 2; net -12
    assert (t2.side, t2.opened_at, t2.closed_at) == (PositionSide.SHORT, at(1, 11), at(2, 10))
    assert (t2.realized, t2.fees, t2.pnl, t2.fills, t2.max_size) == (D(-10), D(2), D(-12), 3, D(1))
    assert (t2.entry_price, t2.exit_price) == (D(120), D(130))
    # trip 3, short ETH: 2 x (50 - 45) = 10; fees 0.2 + 0.2; net 9.6
    assert (t3.symbol, t3.side, t3.realized, t3.fees, t3.pnl) == ("ETH/USDT", PositionSide.SHORT, D(10), D("0.4"), D("9.6"))
    assert t3.duration == timedelta(days=1)


def test_win_rate_averages_profit_factor_and_totals(recorder: TradeRecorder) -> None:
    r = recorder.report()
    assert (r.wins, r.losses) == (2, 1)
    assert r.win_rate == pytest.approx(2 / 3)
    assert r.avg_win == D("11.3")  # (13 + 9.6) / 2
    assert r.avg_loss == D(-12)
    assert r.profit_factor == pytest.approx(22.6 / 12)  # gross win 13 + 9.6 over gross loss 12
    # realized 5 + 10 - 10 + 10 = 15; fees 1 + 0.5 + 1 + 0.5 + 1 + 0.2 + 0.2 = 4.4; net 10.6 = 13 - 12 + 9.6
    assert (r.realized, r.fees, r.total_pnl) == (D(15), D("4.4"), D("10.6"))
    assert r.ending_equity == D("10010.6")


def test_per_day_pnl_and_daily_returns(recorder: TradeRecorder) -> None:
    r = recorder.report()
    # day 1: realized 5 + 10, fees 1 + 0.5 + 1 + 0.5 -> 12; day 2: -10 - 1 - 0.2 -> -11.2; day 3: 10 - 0.2 -> 9.8
    assert r.daily == [(date(2026, 1, 5), D(12)), (date(2026, 1, 6), D("-11.2")), (date(2026, 1, 7), D("9.8"))]
    # returns on the equity at each day's start: 10,000, then 10,012, then 10,000.8
    assert r.returns == pytest.approx([12 / 10_000, -11.2 / 10_012, 9.8 / 10_000.8])


def test_equity_curve_and_drawdown(recorder: TradeRecorder) -> None:
    r = recorder.report()
    # each fill adds realized - fee: -1, +4.5, +9, -0.5, -11, -0.2, +9.8
    assert [e for _, e in r.equity_curve] == [D(v) for v in (
        "10000", "9999", "10003.5", "10012.5", "10012", "10001", "10000.8", "10010.6")]
    # the peak 10,012.5 (after F3a) falls to 10,000.8 (after F5): 11.7
    assert r.max_drawdown == D("11.7")
    assert r.max_drawdown_pct == pytest.approx(11.7 / 10_012.5 * 100)


def test_exposure_time(recorder: TradeRecorder) -> None:
    r = recorder.report()
    # period: first fill day 1 09:00 -> last fill day 3 12:00 = 51 h. A position is open from
    # day 1 09:00 to day 2 10:00 (BTC, 25 h, the flip does not interrupt it) and from day 2
    # 12:00 to day 3 12:00 (ETH, 24 h): 49 h
    assert (r.start, r.end) == (at(1, 9), at(3, 12))
    assert r.exposure_time == timedelta(hours=49)
    assert r.exposure == pytest.approx(49 / 51)


def test_sharpe_and_sortino_on_a_known_daily_series() -> None:
    returns = [0.02, 0.0, -0.01, 0.03]
    # mean 0.01; deviations 0.01, -0.01, -0.02, 0.02 -> squares sum 0.001; sample variance 0.001 / 3
    # Sharpe = 0.01 / sqrt(0.001 / 3) * sqrt(365) = sqrt(0.3) * sqrt(365) = sqrt(109.5)
    assert sharpe(returns) == pytest.approx(math.sqrt(109.5))
    # downside deviation = sqrt((-0.01)^2 / 4) = 0.005; Sortino = 0.01 / 0.005 * sqrt(365) = 2 sqrt(365)
    assert sortino(returns) == pytest.approx(2 * math.sqrt(365))
    assert sharpe([0.01]) is None and sortino([0.01]) is None  # fewer than 2 days: undefined
    assert sharpe([0.01, 0.01]) is None  # no spread
    assert sortino([0.01, 0.02]) is None  # no losing day


def test_days_without_fills_count_as_zero_returns() -> None:
    # a trip a day on days 1, 3 and 4 (none on day 2), no fees, from 10,000:
    # +200 (r 0.02, equity 10,200), day 2 nothing (r 0), -102 (r -0.01, 10,098), +302.94 (r 0.03)
    fills = []
    for n, (day, exit_price) in enumerate(((1, "1200"), (3, "898"), (4, "1302.94"))):
        fills += [fill(f"o{n}", f"a{n}", "BTC/USDT", "buy", "1", "1000", "0", at(day, 9)),
                  fill(f"c{n}", f"b{n}", "BTC/USDT", "sell", "1", exit_price, "0", at(day, 10))]
    r = TradeRecorder(fills, starting_equity=D(10_000)).report()
    assert [pnl for _, pnl in r.daily] == [D(200), D(0), D(-102), D("302.94")]
    assert r.returns == pytest.approx([0.02, 0.0, -0.01, 0.03])
    assert r.sharpe == pytest.approx(math.sqrt(109.5))  # the series above
    assert r.sortino == pytest.approx(2 * math.sqrt(365))


def test_one_day_has_no_sharpe() -> None:
    r = TradeRecorder(FILLS[:2], starting_equity=D(10_000)).report()
    assert len(r.daily) == 1 and r.sharpe is None and r.sortino is None


def test_execution_quality_per_order(recorder: TradeRecorder) -> None:
    e = {x.order.id: x for x in recorder.report().executions}
    assert sorted(e) == ["O1", "O2", "O3", "O4", "O5", "O6"]  # O7 never reached a venue
    o1, o2, o3 = e["O1"], e["O2"], e["O3"]
    assert o1.ack_latency == timedelta(milliseconds=250)
    assert o1.first_fill_after == timedelta(0) == o1.complete_fill_after  # filled with the answer
    # buy at 100 against a mark of 99.9: paid 0.1 more -> positive (worse); 0.1 / 99.9 x 10,000 = 10.0100.. bps
    assert (o1.slippage, o1.slippage_bps) == (D("0.1"), D("10.01"))
    # sell at 110 against 109: received 1 more -> negative (better); -1 / 109 x 10,000 = -91.743.. bps
    assert (o2.slippage, o2.slippage_bps) == (D(-1), D("-91.74"))
    assert o2.first_fill_after == timedelta(minutes=29, seconds=59, milliseconds=900)  # 09:30:00.1 -> 10:00
    assert (o2.maker_share, o2.fees) == (1.0, D("0.5"))
    # sell at 120 against 120.5: received 0.5 less -> positive (worse); 0.5 / 120.5 x 10,000 = 41.493.. bps
    assert (o3.filled, o3.average_price, o3.slippage, o3.slippage_bps) == (D("1.5"), D(120), D("0.5"), D("41.49"))
    assert (o3.first_fill_after, o3.complete_fill_after) == (timedelta(0), timedelta(seconds=30))
    assert (o3.maker_share, o3.fees) == (0.0, D("1.5"))
    # buy at 45 against 45.1: paid 0.1 less -> negative (better)
    assert e["O6"].slippage == D("-0.1") and e["O6"].slippage_bps == D("-22.17")  # -0.1 / 45.1 x 10,000


def test_execution_quality_aggregated(recorder: TradeRecorder) -> None:
    s = recorder.report().execution
    assert (s.orders, s.filled_orders) == (6, 6)
    # ack latencies 250, 100, 200, 300, 150, 200 ms: mean 1200 / 6 = 200, median (200 + 200) / 2, max 300
    assert (s.ack_latency_mean, s.ack_latency_median, s.ack_latency_max) == (
        timedelta(milliseconds=200), timedelta(milliseconds=200), timedelta(milliseconds=300))
    # first fills after the ack: 0, 1799.9 s, 0, 0, 3599.85 s, 59.8 s -> median (0 + 59.8) / 2 = 29.9 s
    assert s.first_fill_median == timedelta(seconds=29.9)
    # slippage x amount: 0.1 x 1 - 1 x 0.5 + 0.5 x 1.5 + 0 - 0.1 x 2 - 0.1 x 2 = -0.05 (a net gain)
    assert s.slippage_cost == D("-0.05")
    # over mark x amount: 99.9 + 54.5 + 180.75 + 130 + 99.8 + 90.2 = 655.15 -> -0.05 / 655.15 x 10,000 = -0.763.. bps
    assert s.slippage_bps == D("-0.76")
    assert s.fees == D("4.4")
    # maker notional: F2 55 + F5 100 + F6 90 = 245; taker: F1 100 + F3 180 + F4 130 = 410; 245 / 655
    assert s.maker_share == pytest.approx(245 / 655)


def test_period_filter_replays_history_but_counts_the_period(recorder: TradeRecorder) -> None:
    r = recorder.report(Period(since=at(2, 0)))
    # trip 1 closed on day 1: out; trip 2 (opened day 1, closed day 2) counts with its whole PnL
    assert [t.pnl for t in r.trips] == [D(-12), D("9.6")]
    # equity at the start: 10,000 + 12 (day 1); PnL of days 2 and 3 only: -11.2 + 9.8
    assert (r.starting_equity, r.total_pnl) == (D(10_012), D("-1.4"))
    assert [d for d, _ in r.daily] == [date(2026, 1, 6), date(2026, 1, 7)]
    assert r.max_drawdown == D("11.2")  # 10,012 -> 10,000.8
    # day 2 00:00 -> day 3 12:00 = 36 h: the BTC short until 10:00 (10 h) + ETH 24 h = 34 h
    assert r.exposure == pytest.approx(34 / 36)
    assert [e.order.id for e in r.executions] == ["O4", "O5", "O6"]

    day1 = recorder.report(Period(since=at(1, 0), until=at(2, 0)))  # until is exclusive
    assert [d for d, _ in day1.daily] == [date(2026, 1, 5)]
    assert day1.total_pnl == D(12)
    assert [(t.pnl, t.is_open) for t in day1.trips] == [(D(13), False)]  # trip 2 closed later: not open *now*


def test_an_open_position_is_listed_not_counted_and_exposed_until_now() -> None:
    r = TradeRecorder(FILLS[:4], starting_equity=D(10_000)).report(now=at(1, 12))
    closed, still_open = r.trips
    assert not closed.is_open and still_open.is_open and still_open.side is PositionSide.SHORT
    assert (r.wins, r.losses, r.win_rate) == (1, 0, 1.0)
    assert r.profit_factor is None  # no losing trip: undefined
    assert r.end == at(1, 12) and r.exposure == pytest.approx(1.0)  # open from 09:00 until now


def test_multiple_accounts_keep_their_own_trips() -> None:
    fills = [fill("a", "1", "BTC/USDT", "buy", "1", "100", "0", at(1, 9), account="a"),
             fill("b", "2", "BTC/USDT", "sell", "1", "100", "0", at(1, 9), account="b"),
             fill("c", "3", "BTC/USDT", "sell", "1", "90", "0", at(1, 10), account="a")]
    r = TradeRecorder(fills, starting_equity=D(200)).report()
    assert [(t.account, t.side, t.pnl, t.is_open) for t in r.trips] == [
        ("a", PositionSide.LONG, D(-10), False), ("b", PositionSide.SHORT, D(0), True)]


def test_max_drawdown_and_bad_period() -> None:
    assert max_drawdown([D(100), D(120), D(90), D(130), D(117)]) == (D(30), pytest.approx(25.0))  # 120 -> 90
    assert max_drawdown([]) == (D(0), None)
    with pytest.raises(ValueError, match="until .* must be after since"):
        Period(since=at(2, 0), until=at(1, 0))


def test_no_fills_gives_an_empty_report() -> None:
    r = TradeRecorder([], starting_equity=D(1000)).report()
    assert (r.trips, r.daily, r.equity_curve, r.total_pnl, r.sharpe, r.exposure) == ([], [], [], D(0), None, None)
    assert r.ending_equity == D(1000) and r.execution.orders == 0


def test_a_fee_kept_in_the_base_coin_sizes_the_round_trip_by_what_was_received() -> None:
    # buy 1 BTC @ 100, the venue keeps 0.001 BTC as fee (worth 0.1 USDT): 0.999 received.
    # Selling those 0.999 @ 110 (fee 0.1% = 0.10989 USDT) closes the trip with no dust:
    # realized 0.999 x (110 - 100) = 9.99; fees 0.1 + 0.10989 = 0.20989; net 9.78011
    bought = fill("B", "1", "BTC/USDT", "buy", "1", "100", "0.1", at(1, 9)).model_copy(update={"base_fee": D("0.001")})
    sold = fill("S", "2", "BTC/USDT", "sell", "0.999", "110", "0.10989", at(1, 10))
    r = TradeRecorder([bought, sold], starting_equity=D(1000)).report()
    (trip,) = r.trips
    assert (trip.is_open, trip.closed_at, trip.fills) == (False, at(1, 10), 2)
    assert (trip.entry_amount, trip.exit_amount, trip.max_size) == (D("0.999"), D("0.999"), D("0.999"))
    assert (trip.entry_price, trip.exit_price) == (D(100), D(110))
    assert (trip.realized, trip.fees, trip.pnl) == (D("9.99"), D("0.20989"), D("9.78011"))
    assert r.exposure == pytest.approx(1.0)  # flat again at the sell: nothing left open


def test_a_closing_buy_net_of_its_base_fee_books_its_whole_fee_on_the_trip() -> None:
    # short 1 @ 100 (fee 0.1); buying 1.001 @ 90 with 0.001 BTC kept as fee (0.09 USDT) receives
    # exactly 1: it closes the trip and all of its fee belongs to it. realized 1 x (100 - 90) = 10;
    # fees 0.1 + 0.09 = 0.19; net 9.81
    short = fill("S", "1", "BTC/USDT", "sell", "1", "100", "0.1", at(1, 9))
    cover = fill("B", "2", "BTC/USDT", "buy", "1.001", "90", "0.09", at(1, 10)).model_copy(
        update={"base_fee": D("0.001")})
    (trip,) = TradeRecorder([short, cover], starting_equity=D(1000)).report().trips
    assert (trip.side, trip.is_open, trip.exit_amount, trip.exit_price) == (PositionSide.SHORT, False, D(1), D(90))
    assert (trip.realized, trip.fees, trip.pnl) == (D(10), D("0.19"), D("9.81"))


def test_a_flip_splits_its_fee_by_the_net_amounts_closed_and_opened() -> None:
    # long 1 @ 100 (no fee), then sell 2 @ 110 giving up 0.002 BTC more as fee (fee value 0.2002):
    # the position moves by -2.002, 1 closes the long and 1.002 opens the short. The fee splits
    # 1 : 1.002 -> 0.2002 x 1 / 2.002 = 0.1 closes the long, 0.1002 opens the short
    long = fill("L", "1", "BTC/USDT", "buy", "1", "100", "0", at(1, 9))
    flip = fill("F", "2", "BTC/USDT", "sell", "2", "110", "0.2002", at(1, 10)).model_copy(update={"base_fee": D("0.002")})
    first, second = TradeRecorder([long, flip], starting_equity=D(1000)).report().trips
    assert (first.is_open, first.realized, first.fees, first.exit_amount) == (False, D(10), D("0.1"), D(1))
    assert (second.side, second.is_open, second.entry_amount, second.fees) == (
        PositionSide.SHORT, True, D("1.002"), D("0.1002"))
