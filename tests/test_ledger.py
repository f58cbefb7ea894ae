"""core.ledger against ledgers computed by hand.

Every expected figure is worked out in a comment next to the assertion, so a reader can check
the arithmetic without running the code. All values are Decimal; every Fill carries a fixed,
timezone-aware UTC timestamp.

Reminder of the model (core/ledger.py): a book keeps the signed open quantity ``qty`` and the
signed cost basis ``cost`` (sum of signed amount x price still open). entry = cost / qty;
unrealized = qty * mark - cost; a partial close removes cost * closed / |qty| from the basis and
realizes (exit value - removed cost). The cash balance is initial + realized - fees.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from core.ledger import Ledger
from core.models import Fill, PositionSide, Side, TradingState

D = Decimal
BTC = "BTC/USDT"
ETH = "ETH/USDT"
T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)  # a Monday morning, UTC

_trade_ids = itertools.count(1)


def fill(
    side: Side,
    amount: str,
    price: str,
    *,
    symbol: str = BTC,
    fee: str = "0",
    ts: datetime = T0,
    order_id: str | None = None,
) -> Fill:
    n = next(_trade_ids)
    oid = order_id or f"o{n}"
    return Fill(
        id=f"t{n}",
        order_id=oid,
        client_order_id=oid,
        symbol=symbol,
        side=side,
        amount=D(amount),
        price=D(price),
        fee=D(fee),
        timestamp=ts,
    )


def buy(amount: str, price: str, **kw: object) -> Fill:
    return fill(Side.BUY, amount, price, **kw)  # type: ignore[arg-type]


def sell(amount: str, price: str, **kw: object) -> Fill:
    return fill(Side.SELL, amount, price, **kw)  # type: ignore[arg-type]


def new_ledger(initial: str = "10000") -> Ledger:
    return Ledger(account="paper", currency="USDT", initial_balance=D(initial))


# -- opening, adding, reducing ---------------------------------------------------------------


def test_fresh_ledger_starts_with_the_initial_balance_everywhere() -> None:
    led = new_ledger("10000")
    st = led.status()
    assert st.balance == st.equity == st.equity_peak == D(10000)
    assert st.realized_pnl == st.unrealized_pnl == st.fees == st.daily_pnl == D(0)
    assert st.drawdown == st.drawdown_pct == D(0)
    assert st.used_margin == D(0) and st.free_margin == D(10000)
    assert st.open_positions == 0
    assert led.positions() == []
    flat = led.position(BTC)
    assert flat.side is PositionSide.FLAT and flat.size == 0 and flat.liquidation_price is None


def test_two_buys_average_the_entry_price() -> None:
    led = new_ledger()
    led.apply_fill(buy("1", "100"))
    pos = led.apply_fill(buy("1", "110"))
    # cost = 1*100 + 1*110 = 210; qty = 2; entry = 210 / 2 = 105
    assert pos.side is PositionSide.LONG
    assert pos.size == D(2)
    assert pos.signed_size == D(2)
    assert led.signed_size(BTC) == D(2)
    assert pos.entry_price == D(105)
    assert pos.realized_pnl == D(0)
    assert led.realized == D(0)
    assert led.balance == D(10000)  # nothing realized, no fees


def test_partial_close_realizes_against_the_average_entry() -> None:
    led = new_ledger()
    led.apply_fill(buy("1", "100"))
    led.apply_fill(buy("1", "110"))
    pos = led.apply_fill(sell("1", "120"))
    # removed cost = 210 * 1 / 2 = 105; realized = 1*120 - 105 = +15
    # left: qty 1, cost 210 - 105 = 105 -> entry 105 (unchanged by a reduction)
    assert pos.realized_pnl == D(15)
    assert led.realized == D(15)
    assert pos.side is PositionSide.LONG
    assert pos.size == D(1)
    assert pos.entry_price == D(105)
    # balance = 10000 + 15 - 0 = 10015
    assert led.balance == D(10015)


def test_closing_the_rest_goes_flat_and_clears_entry_and_opened_at() -> None:
    led = new_ledger()
    led.apply_fill(buy("1", "100"))
    led.apply_fill(buy("1", "110"))
    led.apply_fill(sell("1", "120"))  # +15 (see above)
    pos = led.apply_fill(sell("1", "101", ts=T0 + timedelta(minutes=5)))
    # remaining cost 105; realized = 101 - 105 = -4; total = 15 - 4 = 11
    assert pos.side is PositionSide.FLAT
    assert pos.size == D(0)
    assert pos.entry_price == D(0)
    assert pos.unrealized_pnl == D(0)
    assert pos.liquidation_price is None
    assert pos.opened_at is None
    assert pos.updated_at == T0 + timedelta(minutes=5)
    assert pos.realized_pnl == D(11)
    assert led.realized == D(11)
    assert led.balance == D(10011)
    assert led.positions() == []  # flat books are hidden ...
    assert [p.symbol for p in led.positions(include_flat=True)] == [BTC]  # ... unless asked for
    assert led.status().open_positions == 0


def test_flip_long_to_short_in_one_fill() -> None:
    led = new_ledger()
    led.apply_fill(buy("1", "100", ts=T0))
    t_flip = T0 + timedelta(hours=1)
    pos = led.apply_fill(sell("3", "90", ts=t_flip))
    # close the long 1: realized = 1*90 - 100 = -10
    # open the rest: qty = 1 - 3 = -2 at the fill price -> cost = -2*90 = -180, entry = -180/-2 = 90
    assert pos.realized_pnl == D(-10)
    assert led.realized == D(-10)
    assert pos.side is PositionSide.SHORT
    assert pos.size == D(2)
    assert led.signed_size(BTC) == D(-2)
    assert pos.entry_price == D(90)
    assert pos.opened_at == t_flip  # the new short was opened by the flipping fill
    assert led.balance == D(9990)  # 10000 - 10


def test_flip_short_to_long_in_one_fill() -> None:
    led = new_ledger()
    led.apply_fill(sell("2", "50"))
    pos = led.apply_fill(buy("5", "40"))
    # close the short 2: realized = qty*price - cost = (-2)*40 - (-100) = +20
    # open long 5 - 2 = 3 at 40 -> entry 40
    assert pos.realized_pnl == D(20)
    assert pos.side is PositionSide.LONG
    assert pos.size == D(3)
    assert pos.entry_price == D(40)


def test_short_then_cover_with_profit() -> None:
    led = new_ledger()
    pos = led.apply_fill(sell("3", "100"))
    # cost = -3*100 = -300; entry = -300 / -3 = 100
    assert pos.side is PositionSide.SHORT and pos.size == D(3) and pos.entry_price == D(100)
    pos = led.apply_fill(buy("1", "90"))
    # removed = -300 * 1/3 = -100; realized = -(+1)*90 - (-100) = +10; cost left -200, qty -2
    assert pos.realized_pnl == D(10)
    assert pos.side is PositionSide.SHORT and pos.size == D(2) and pos.entry_price == D(100)
    pos = led.apply_fill(buy("2", "80"))
    # full cover: removed = -200; realized = -(2*80) - (-200) = +40; total = 10 + 40 = 50
    assert pos.realized_pnl == D(50)
    assert pos.side is PositionSide.FLAT and pos.size == D(0)
    assert led.realized == D(50)
    assert led.balance == D(10050)


def test_short_cover_at_a_loss_is_negative() -> None:
    led = new_ledger()
    led.apply_fill(sell("1", "100"))
    pos = led.apply_fill(buy("1", "130"))
    # realized = -130 - (-100) = -30
    assert pos.realized_pnl == D(-30)
    assert led.balance == D(9970)


def test_partial_fills_of_one_order_book_like_one_fill_at_the_average() -> None:
    led = new_ledger()
    # one buy order for 1.0 filled in three pieces
    led.apply_fill(buy("0.3", "100", order_id="A", fee="0.03"))
    led.apply_fill(buy("0.5", "101", order_id="A", fee="0.05"))
    pos = led.apply_fill(buy("0.2", "102", order_id="A", fee="0.02"))
    # cost = 0.3*100 + 0.5*101 + 0.2*102 = 30 + 50.5 + 20.4 = 100.9; qty = 1.0; entry = 100.9
    assert pos.size == D("1.0")
    assert pos.entry_price == D("100.9")
    assert pos.realized_pnl == D(0)
    assert pos.fees == D("0.10")  # 0.03 + 0.05 + 0.02

    # the same order as a single fill gives the same position
    one = new_ledger()
    single = one.apply_fill(buy("1.0", "100.9", fee="0.10"))
    assert (single.size, single.entry_price, single.fees) == (pos.size, pos.entry_price, pos.fees)

    # one sell order for 1.0 closes in two pieces
    pos = led.apply_fill(sell("0.4", "105", order_id="B"))
    # removed = 100.9 * 0.4 / 1.0 = 40.36; realized = 0.4*105 - 40.36 = 42 - 40.36 = 1.64
    assert pos.realized_pnl == D("1.64")
    assert pos.size == D("0.6")
    assert pos.entry_price == D("100.9")  # cost left 60.54 / 0.6
    pos = led.apply_fill(sell("0.6", "106", order_id="B"))
    # removed = the rest 60.54; realized = 0.6*106 - 60.54 = 63.6 - 60.54 = 3.06; total 4.70
    # check: proceeds 42 + 63.6 = 105.6, cost 100.9 -> 4.7
    assert pos.realized_pnl == D("4.70")
    assert pos.side is PositionSide.FLAT
    # balance = 10000 + 4.70 - 0.10 = 10004.60
    assert led.balance == D("10004.60")


def test_a_reduction_that_does_not_divide_evenly_keeps_the_figures_consistent() -> None:
    led = new_ledger()
    led.apply_fill(buy("1", "100"))
    led.apply_fill(buy("1", "100"))
    led.apply_fill(buy("1", "100.01"))
    # cost = 300.01, qty 3
    pos = led.apply_fill(sell("1", "101"))
    # removed = 300.01 / 3 = 100.003333... rounded to 12 places = 100.003333333333
    # realized = 101 - 100.003333333333 = 0.996666666667
    # cost left = 300.01 - 100.003333333333 = 200.006666666667
    assert pos.realized_pnl == D("0.996666666667")
    # entry = 200.006666666667 / 2 = 100.0033333333335 -> 8 places -> 100.00333333
    assert pos.entry_price == D("100.00333333")
    pos = led.apply_fill(sell("2", "99"))
    # the last close removes exactly the cost left: realized = 198 - 200.006666666667 = -2.006666666667
    # total = 0.996666666667 - 2.006666666667 = -1.01; check: 101 + 198 - 300.01 = -1.01
    assert pos.realized_pnl == D("-1.01")
    assert led.balance == D("9998.99")


# -- fees ------------------------------------------------------------------------------------


def test_fees_are_kept_apart_from_realized_pnl() -> None:
    led = new_ledger()
    pos = led.apply_fill(buy("1", "100", fee="0.1"))
    # opening: nothing realized, but the fee is paid: balance = 10000 - 0.1
    assert pos.realized_pnl == D(0)
    assert pos.fees == D("0.1")
    assert led.balance == D("9999.9")
    pos = led.apply_fill(sell("1", "110", fee="0.11"))
    # realized = 110 - 100 = 10 (fees NOT subtracted); fees = 0.1 + 0.11 = 0.21
    assert pos.realized_pnl == D(10)
    assert pos.fees == D("0.21")
    assert led.realized == D(10)
    assert led.fees == D("0.21")
    # balance = initial + realized - fees = 10000 + 10 - 0.21 = 10009.79
    assert led.balance == D("10009.79")
    assert led.balance == led.initial_balance + led.realized - led.fees
    st = led.status()
    assert (st.realized_pnl, st.fees, st.balance) == (D(10), D("0.21"), D("10009.79"))


def test_fees_are_kept_per_symbol_and_summed_for_the_account() -> None:
    led = new_ledger()
    led.apply_fill(buy("1", "100", fee="0.1"))
    led.apply_fill(sell("1", "110", fee="0.11"))
    led.apply_fill(buy("2", "20", symbol=ETH, fee="0.05"))
    assert led.position(BTC).fees == D("0.21")
    assert led.position(ETH).fees == D("0.05")
    assert led.fees == D("0.26")  # 0.21 + 0.05
    # balance = 10000 + 10 - 0.26 = 10009.74
    assert led.balance == D("10009.74")


def test_a_rebate_is_a_negative_fee_and_raises_the_balance() -> None:
    led = new_ledger()
    led.apply_fill(buy("1", "100", fee="-0.02"))  # maker rebate
    assert led.fees == D("-0.02")
    assert led.balance == D("10000.02")


def test_a_fee_taken_in_the_base_coin_shrinks_the_position_and_is_booked_at_its_quote_value() -> None:
    # OKX spot: buying 1 BTC at 100 with a 0.1% fee delivers 0.999 BTC; the 0.001 BTC kept is
    # worth 0.001 x 100 = 0.1 USDT (fill.fee), the fill's base_fee is the coin itself
    led = new_ledger()
    bought = fill(Side.BUY, "1", "100", fee="0.1")
    pos = led.apply_fill(bought.model_copy(update={"base_fee": D("0.001")}))
    # qty = 1 - 0.001 = 0.999; cost = 0.999 x 100 = 99.9; entry 100
    assert (pos.size, pos.entry_price, pos.fees) == (D("0.999"), D(100), D("0.1"))
    # the exchange: USDT 10000 - 100 = 9900, BTC 0.999. Selling all 0.999 at 110, 0.1% fee
    # in the quote: 0.999 x 110 = 109.89 in, fee 0.10989 -> USDT 9900 + 109.89 - 0.10989 = 10009.78011
    pos = led.apply_fill(sell("0.999", "110", fee="0.10989"))
    assert pos.size == 0 and led.books[BTC].cost == 0  # flat: no dust from the fee
    # realized = 109.89 - 99.9 = 9.99; fees = 0.1 + 0.10989 = 0.20989
    assert (led.realized, led.fees) == (D("9.99"), D("0.20989"))
    assert led.balance == D("10009.78011")  # the exchange's USDT to the last digit


def test_a_sell_whose_fee_is_taken_in_the_base_gives_up_the_fee_too() -> None:
    led = new_ledger()
    led.apply_fill(buy("1", "100"))
    # sold 0.5 and the exchange kept 0.0005 BTC more: 0.4995 left; the fee is 0.0005 x 120 = 0.06
    pos = led.apply_fill(sell("0.5", "120", fee="0.06").model_copy(update={"base_fee": D("0.0005")}))
    assert pos.size == D("0.4995")
    # realized on 0.5005 closed = 0.5005 x 120 - 50.05 = 10.01; cash 10000 + 10.01 - 0.06 = 10009.95
    # (the exchange: 10000 - 100 + 60 = 9960 USDT plus 0.4995 BTC at cost 49.95 = 10009.95)
    assert (led.realized, led.balance) == (D("10.01"), D("10009.95"))


# -- marks, equity, drawdown -------------------------------------------------------------------


def test_a_fill_marks_a_new_book_at_the_fill_price() -> None:
    led = new_ledger()
    pos = led.apply_fill(buy("2", "100"))
    # mark starts at the fill price: unrealized = 2*100 - 200 = 0
    assert pos.mark_price == D(100)
    assert pos.unrealized_pnl == D(0)


def test_unrealized_pnl_of_a_long_at_a_mark() -> None:
    led = new_ledger()
    led.apply_fill(buy("2", "100"))
    pos = led.mark(BTC, D(110))
    # unrealized = qty*mark - cost = 2*110 - 200 = +20
    assert pos is not None
    assert pos.mark_price == D(110)
    assert pos.unrealized_pnl == D(20)
    assert led.unrealized == D(20)
    pos = led.mark(BTC, D(95))
    # 2*95 - 200 = -10
    assert pos is not None and pos.unrealized_pnl == D(-10)
    assert pos.realized_pnl == D(0)  # marking never realizes


def test_unrealized_pnl_of_a_short_at_a_mark() -> None:
    led = new_ledger()
    led.apply_fill(sell("2", "100"))
    pos = led.mark(BTC, D(90))
    # qty -2, cost -200: unrealized = -2*90 - (-200) = +20 (a short gains when the price falls)
    assert pos is not None and pos.unrealized_pnl == D(20)
    pos = led.mark(BTC, D(105))
    # -2*105 + 200 = -10
    assert pos is not None and pos.unrealized_pnl == D(-10)


def test_mark_returns_none_for_an_unknown_symbol_or_a_flat_book() -> None:
    led = new_ledger()
    assert led.mark(BTC, D(100)) is None  # no book at all
    led.apply_fill(buy("1", "100"))
    led.apply_fill(sell("1", "100"))
    assert led.mark(BTC, D(120)) is None  # book exists but is flat
    assert led.unrealized == D(0)


def test_equity_is_balance_plus_unrealized_over_symbols() -> None:
    led = new_ledger()
    led.apply_fill(buy("1", "100", fee="1"))
    led.apply_fill(sell("10", "20", symbol=ETH, fee="0.5"))
    led.mark(BTC, D(120))
    led.mark(ETH, D(21))
    # balance = 10000 - 1 - 0.5 = 9998.5
    # unrealized: BTC 1*120 - 100 = 20; ETH -10*21 - (-200) = -10; total 10
    # equity = 9998.5 + 10 = 10008.5
    st = led.status()
    assert st.balance == D("9998.5")
    assert st.unrealized_pnl == D(10)
    assert st.equity == D("10008.5")
    assert st.equity == st.balance + st.unrealized_pnl
    assert led.equity == D("10008.5")
    assert st.open_positions == 2


def test_equity_peak_and_drawdown_after_a_mark_drop() -> None:
    led = new_ledger()
    led.apply_fill(buy("1", "100"))
    st = led.status()
    assert st.equity_peak == D(10000) and st.drawdown == D(0) and st.drawdown_pct == D(0)

    led.mark(BTC, D(300))
    # equity = 10000 + (300 - 100) = 10200: a new peak, no drawdown
    st = led.status()
    assert st.equity == D(10200)
    assert st.equity_peak == D(10200)
    assert st.drawdown == D(0)

    led.mark(BTC, D(198))
    # equity = 10000 + 98 = 10098; drawdown = 10200 - 10098 = 102
    # pct = 102 / 10200 * 100 = 1 -> 1.0000
    st = led.status()
    assert st.equity == D(10098)
    assert st.equity_peak == D(10200)  # a drop never lowers the peak
    assert st.drawdown == D(102)
    assert st.drawdown_pct == D("1.0000")

    led.mark(BTC, D(250))
    # equity = 10150; drawdown = 50; pct = 50 / 10200 * 100 = 0.490196... -> 0.4902
    st = led.status()
    assert st.equity_peak == D(10200)
    assert st.drawdown == D(50)
    assert st.drawdown_pct == D("0.4902")


def test_a_realized_loss_also_counts_as_drawdown() -> None:
    led = new_ledger("1000")
    led.apply_fill(buy("1", "100"))
    led.apply_fill(sell("1", "50", fee="1"))
    # balance = 1000 - 50 - 1 = 949; peak stays 1000; drawdown 51 = 5.1%
    st = led.status()
    assert st.equity == D(949)
    assert st.equity_peak == D(1000)
    assert st.drawdown == D(51)
    assert st.drawdown_pct == D("5.1000")


# -- daily PnL ---------------------------------------------------------------------------------


def test_daily_pnl_resets_when_a_mark_crosses_into_a_new_utc_day() -> None:
    led = new_ledger()
    led.apply_fill(buy("1", "100", ts=T0))  # 2026-01-05 09:30 UTC
    assert led.day == date(2026, 1, 5)
    assert led.day_start_equity == D(10000)  # the first day starts at the initial balance

    led.mark(BTC, D(110), T0.replace(hour=12))
    # equity 10010; daily = 10010 - 10000 = 10
    assert led.status().daily_pnl == D(10)

    last_moment = datetime(2026, 1, 5, 23, 59, 59, 999999, tzinfo=UTC)
    led.mark(BTC, D(120), last_moment)
    # still 2026-01-05: daily = 10020 - 10000 = 20
    assert led.day == date(2026, 1, 5)
    assert led.status().daily_pnl == D(20)

    midnight = datetime(2026, 1, 6, 0, 0, 0, tzinfo=UTC)
    led.mark(BTC, D(125), midnight)
    # the roll happens before the new mark is applied: day_start_equity = equity at mark 120 = 10020
    # then equity = 10025; daily = 10025 - 10020 = 5
    assert led.day == date(2026, 1, 6)
    assert led.day_start_equity == D(10020)
    st = led.status()
    assert st.equity == D(10025)
    assert st.daily_pnl == D(5)


def test_daily_pnl_resets_when_a_fill_crosses_into_a_new_utc_day() -> None:
    led = new_ledger()
    led.apply_fill(buy("1", "100", ts=T0))
    led.mark(BTC, D(125), T0.replace(hour=20))  # equity 10025, daily 25
    assert led.status().daily_pnl == D(25)

    next_day = datetime(2026, 1, 6, 0, 0, 1, tzinfo=UTC)
    led.apply_fill(sell("1", "130", fee="0.5", ts=next_day))
    # roll first: day_start_equity = 10000 + (125 - 100) = 10025
    # then: realized = 130 - 100 = 30; balance = 10000 + 30 - 0.5 = 10029.5; flat -> equity 10029.5
    # daily = 10029.5 - 10025 = 4.5
    assert led.day == date(2026, 1, 6)
    assert led.day_start_equity == D(10025)
    assert led.status().daily_pnl == D("4.5")


def test_daily_pnl_does_not_reset_within_a_day_or_without_a_timestamp() -> None:
    led = new_ledger()
    led.apply_fill(buy("1", "100", ts=T0))
    led.mark(BTC, D(90), T0 + timedelta(hours=14))  # 23:30 same day
    led.mark(BTC, D(80))  # no timestamp: no roll, whatever the date
    # daily = (10000 - 20) - 10000 = -20
    assert led.day == date(2026, 1, 5)
    assert led.day_start_equity == D(10000)
    assert led.status().daily_pnl == D(-20)


def test_skipping_days_rolls_once_to_the_latest_day() -> None:
    led = new_ledger()
    led.apply_fill(buy("1", "100", ts=T0))
    led.mark(BTC, D(110), T0 + timedelta(days=3))
    # roll at equity 10000 (mark still 100), then mark 110 -> daily 10
    assert led.day == date(2026, 1, 8)
    assert led.day_start_equity == D(10000)
    assert led.status().daily_pnl == D(10)


def test_the_day_boundary_is_utc_midnight_whatever_the_timestamp_zone() -> None:
    cet = timezone(timedelta(hours=2))
    led = new_ledger()
    led.apply_fill(buy("1", "100", ts=T0))  # 2026-01-05 09:30 UTC
    led.mark(BTC, D(110), datetime(2026, 1, 6, 1, 0, tzinfo=cet))  # = 2026-01-05 23:00 UTC: same UTC day
    # no roll: daily = 10010 - 10000 = 10
    assert led.day == date(2026, 1, 5)
    assert led.status().daily_pnl == D(10)


def test_a_late_fill_stamped_yesterday_does_not_roll_the_day_back() -> None:
    led = new_ledger()
    led.apply_fill(buy("1", "100", ts=T0))  # 2026-01-05
    led.mark(BTC, D(100), datetime(2026, 1, 6, 0, 0, 5, tzinfo=UTC))
    # roll to 01-06 at equity 10000
    assert led.day_start_equity == D(10000)
    led.apply_fill(buy("1", "105", ts=datetime(2026, 1, 5, 23, 59, 59, tzinfo=UTC)))  # reported late
    led.mark(BTC, D(110), datetime(2026, 1, 6, 0, 0, 10, tzinfo=UTC))
    # equity = 10000 + (2*110 - 205) = 10015; the day 01-06 started at 10000 -> daily 15
    assert led.day == date(2026, 1, 6)
    assert led.day_start_equity == D(10000)
    assert led.status().daily_pnl == D(15)


# -- margin and liquidation ---------------------------------------------------------------------


def test_used_margin_is_notional_over_leverage() -> None:
    led = new_ledger()
    led.apply_fill(buy("2", "100"), leverage=D(10))
    # notional at mark (the fill price) = 2*100 = 200; used = 200 / 10 = 20
    assert led.used_margin() == D(20)
    led.mark(BTC, D(150))
    # notional = 2*150 = 300; used = 30
    assert led.used_margin() == D(30)
    led.apply_fill(sell("10", "20", symbol=ETH), leverage=D(5))
    # ETH short: notional |-10| * 20 = 200; used = 200 / 5 = 40; total = 30 + 40 = 70
    assert led.used_margin() == D(70)
    assert led.exposure() == D(500)  # 300 + 200
    st = led.status()
    # equity = 10000 + BTC (300 - 200 = 100) + ETH 0 = 10100
    assert st.equity == D(10100)
    assert st.used_margin == D(70)
    assert st.free_margin == D(10030)  # 10100 - 70
    assert st.exposure == D(500)
    # margin reserved by open orders is used, not free
    st = led.status(TradingState.REDUCING, reserved=D(5))
    assert st.used_margin == D(75)
    assert st.free_margin == D(10025)
    assert st.trading_state is TradingState.REDUCING


def test_default_leverage_is_one_and_flat_books_hold_no_margin() -> None:
    led = new_ledger()
    led.apply_fill(buy("1", "100"))
    assert led.position(BTC).leverage == D(1)
    assert led.used_margin() == D(100)  # 100 / 1
    led.apply_fill(sell("1", "100"))
    assert led.used_margin() == D(0)
    assert led.exposure() == D(0)


def test_liquidation_estimate_is_below_entry_for_a_long() -> None:
    led = new_ledger()
    pos = led.apply_fill(buy("1", "100"), leverage=D(10))
    # step = 1/10 - 0.005 = 0.095; liq = 100 * (1 - 0.095) = 90.5
    assert pos.leverage == D(10)
    assert pos.liquidation_price is not None
    assert pos.liquidation_price < pos.entry_price
    assert pos.liquidation_price == D("90.5")


def test_liquidation_estimate_is_above_entry_for_a_short() -> None:
    led = new_ledger()
    pos = led.apply_fill(sell("1", "100"), leverage=D(10))
    # liq = 100 * (1 + 0.095) = 109.5
    assert pos.liquidation_price is not None
    assert pos.liquidation_price > pos.entry_price
    assert pos.liquidation_price == D("109.5")


def test_an_unlevered_long_has_no_liquidation_price_but_an_unlevered_short_has() -> None:
    led = new_ledger()
    assert led.apply_fill(buy("1", "100")).liquidation_price is None  # leverage 1: cannot be liquidated
    pos = led.apply_fill(sell("1", "100", symbol=ETH))
    # step = 1/1 - 0.005 = 0.995; liq = 100 * 1.995 = 199.5
    assert pos.liquidation_price == D("199.5")


def test_higher_leverage_puts_liquidation_closer_to_entry() -> None:
    led = new_ledger()
    led.apply_fill(buy("1", "100"), leverage=D(10))
    at10 = led.position(BTC).liquidation_price
    led.apply_fill(buy("1", "100"), leverage=D(20))  # the book takes the latest leverage
    at20 = led.position(BTC).liquidation_price
    # step = 1/20 - 0.005 = 0.045; liq = 100 * 0.955 = 95.5
    assert at10 == D("90.5")
    assert at20 == D("95.5")
    assert led.used_margin() == D(10)  # notional 200 / 20


# -- persistence --------------------------------------------------------------------------------


def _busy_ledger() -> Ledger:
    """Two symbols, a closed book, fees, leverage, odd cost basis, a day roll and a drawdown."""
    led = new_ledger("2500")
    led.apply_fill(buy("1", "100", ts=T0, fee="0.1"), leverage=D(10))
    led.apply_fill(buy("1", "100", ts=T0, fee="0.1"), leverage=D(10))
    led.apply_fill(buy("1", "100.01", ts=T0, fee="0.1"), leverage=D(10))
    led.apply_fill(sell("1", "101", ts=T0 + timedelta(minutes=1), fee="0.1"))  # cost left 200.006666666667
    led.apply_fill(sell("4", "20.5", symbol=ETH, ts=T0, fee="0.02"), leverage=D(3))
    led.apply_fill(buy("1.5", "19.75", symbol=ETH, ts=T0 + timedelta(minutes=2), fee="0.01"))
    led.apply_fill(buy("1", "5", symbol="SOL/USDT", ts=T0))
    led.apply_fill(sell("1", "6", symbol="SOL/USDT", ts=T0 + timedelta(minutes=3)))  # flat book
    led.mark(BTC, D("140.5"), T0 + timedelta(hours=1))  # a new peak
    led.mark(BTC, D("97.25"), T0 + timedelta(days=1, hours=1))  # next day, a drop
    led.mark(ETH, D("21.125"), T0 + timedelta(days=1, hours=2))
    return led


def _restore(led: Ledger, via_json: bool = False) -> Ledger:
    account = led.snapshot()
    books = [led.book_snapshot(s) for s in led.books]
    if via_json:  # the journal stores these as JSON
        account = json.loads(json.dumps(account))
        books = json.loads(json.dumps(books))
    return Ledger.restore(account, books)


def _figures(led: Ledger) -> tuple[str, str]:
    # repr keeps the Decimal exponent too: 1.50 and 1.5 would compare equal but print differently
    return repr(led.status().model_dump()), repr([p.model_dump() for p in led.positions(include_flat=True)])


@pytest.mark.parametrize("via_json", [False, True])
def test_snapshot_restore_round_trip_reproduces_every_figure(via_json: bool) -> None:
    led = _busy_ledger()
    st = led.status()
    # sanity: the fixture really exercises what it claims to
    assert st.drawdown > 0 and st.fees > 0 and st.realized_pnl != 0 and st.daily_pnl != 0
    assert led.day == date(2026, 1, 6) and led.day_start_equity != led.initial_balance
    assert len(led.positions(include_flat=True)) == 3 and st.open_positions == 2

    back = _restore(led, via_json)
    assert back.status() == led.status()
    assert back.positions(include_flat=True) == led.positions(include_flat=True)
    assert _figures(back) == _figures(led)
    for attr in ("account", "currency", "initial_balance", "balance", "realized", "fees",
                 "equity_peak", "day", "day_start_equity"):
        assert getattr(back, attr) == getattr(led, attr), attr
    for sym in led.books:
        assert back.book_snapshot(sym) == led.book_snapshot(sym)
        assert back.signed_size(sym) == led.signed_size(sym)
    assert back.snapshot() == led.snapshot()


def test_a_restored_ledger_keeps_booking_exactly_like_the_original() -> None:
    led = _busy_ledger()
    back = _restore(led, via_json=True)
    later = T0 + timedelta(days=2)
    for target in (led, back):
        # same fills and marks on both: a partial close of the odd BTC basis, an ETH flip, a new day
        target.apply_fill(sell("1", "99", ts=later, fee="0.1"), leverage=None)
        target.apply_fill(buy("5", "21", symbol=ETH, ts=later, fee="0.03"))
        target.mark(BTC, D("96"), later + timedelta(hours=1))
        target.mark(ETH, D("22"), later + timedelta(hours=1))
    assert _figures(back) == _figures(led)
    assert back.snapshot() == led.snapshot()


def test_round_trip_with_a_zero_initial_balance() -> None:
    led = new_ledger("0")
    led.apply_fill(buy("1", "100", fee="1", ts=T0))
    led.mark(BTC, D(90), T0)
    # balance -1, equity -11, peak 0 (never exceeded), drawdown 11, daily -11
    st = led.status()
    assert (st.equity_peak, st.drawdown, st.daily_pnl) == (D(0), D(11), D(-11))
    back = _restore(led)
    assert back.status() == led.status()  # restored: peak -1, drawdown 10, daily -10
