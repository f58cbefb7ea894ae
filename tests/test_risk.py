"""Pre-trade risk checks (core.risk): every rule trips with a reason naming it, and passes just
inside its limit. Unit tests drive ``RiskEngine.check`` with hand-built contexts and orders; the
engine-level tests check that a refusal is journaled and never reaches the venue."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from core import Engine, ManualClock, Market, Order, OrderRequest, OrderStatus, Side, TradingState
from core.config import RiskLimits, Settings
from core.risk import RiskContext, RiskEngine, protective_problems, reduces_position

NOW = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
LAST = D(51000)
BTC = Market(
    symbol="BTC/USDT", base="BTC", quote="USDT", tick_size=D("0.1"), lot_size=D("0.0001"),
    min_amount=D("0.0001"), min_notional=D(5), max_leverage=D(20),
)


def market(**kw: Any) -> Market:
    return BTC.model_copy(update={k: D(str(v)) if v is not None else None for k, v in kw.items()})


_seq = 0


def order(
    side: str = "buy", type: str = "market", amount: str = "0.01", price: str | None = None, stop: str | None = None,
    **kw: Any,
) -> Order:
    global _seq
    _seq += 1
    req = OrderRequest(
        symbol="BTC/USDT", side=side, type=type, amount=D(amount),  # type: ignore[arg-type]
        price=D(price) if price is not None else None, stop_price=D(stop) if stop is not None else None, **kw,
    )
    return Order.from_request(req, id=f"o{_seq}", account="paper", now=NOW)


def ctx(**kw: Any) -> RiskContext:
    base: dict[str, Any] = dict(
        market=BTC, last=LAST, position=D(0), equity=D(100_000), free_margin=D(100_000), exposure=D(0),
        state=TradingState.ACTIVE,
    )
    base.update(kw)
    return RiskContext(**base)


def engine_for(clock: ManualClock | None = None, **limits: Any) -> RiskEngine:
    return RiskEngine(RiskLimits(**limits), clock or ManualClock())


def check(o: Order, c: RiskContext | None = None, **limits: Any) -> list[str]:
    return engine_for(**limits).check(o, c or ctx())


def assert_passes(o: Order, c: RiskContext | None = None, **limits: Any) -> None:
    assert check(o, c, **limits) == []


def figure(reason: str, pattern: str) -> D:
    """The number a reason quotes (its formatting may keep trailing zeros)."""
    m = re.fullmatch(pattern, reason)
    assert m, reason
    return D(m.group(1))


def only_reason(o: Order, c: RiskContext | None = None, **limits: Any) -> str:
    reasons = check(o, c, **limits)
    assert len(reasons) == 1, reasons
    return reasons[0]


# -- the baseline ---------------------------------------------------------------------------


def test_a_plain_order_passes() -> None:
    assert_passes(order())
    assert_passes(order(type="limit", price="50000"))
    assert_passes(order(side="sell", type="stop", stop="50000"))


# -- amount ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity", "0", "-0.01", "sNaN"])
def test_amount_not_positive_or_not_finite_is_refused(bad: str) -> None:
    o = order()
    o.amount = D(bad)
    reasons = check(o)
    assert any(r.startswith("amount must be a finite number > 0") and bad.lstrip("-s") in r for r in reasons), reasons


def test_negative_amount_is_refused_even_against_a_position() -> None:
    o = order(side="sell")
    o.amount = D("-0.01")
    reasons = check(o, ctx(position=D("0.5")))
    assert any("amount must be a finite number > 0, got -0.01" in r for r in reasons)


def test_smallest_positive_amount_passes() -> None:
    assert_passes(order(amount="0.0001"))  # one lot: 5.1 USDT, above the 5 USDT minimum notional


# -- price and stop price -------------------------------------------------------------------


@pytest.mark.parametrize("bad", [None, "NaN", "Infinity", "0", "-1"])
@pytest.mark.parametrize("kind", ["limit", "stop_limit"])
def test_missing_or_bad_price_is_refused(kind: str, bad: str | None) -> None:
    o = order(side="sell", type=kind, price="50000", stop="50000" if kind == "stop_limit" else None)
    o.price = D(bad) if bad is not None else None
    reasons = check(o)
    expected = f"price is required for a {kind} order" if bad is None else f"price must be a finite number > 0, got {bad}"
    assert expected in reasons, reasons


@pytest.mark.parametrize("bad", [None, "NaN", "-Infinity", "0", "-5"])
@pytest.mark.parametrize("kind", ["stop", "stop_limit", "take_profit"])
def test_missing_or_bad_stop_price_is_refused(kind: str, bad: str | None) -> None:
    stop = "52000" if kind == "take_profit" else "50000"
    o = order(side="sell", type=kind, stop=stop, price="50000" if kind == "stop_limit" else None)
    o.stop_price = D(bad) if bad is not None else None
    reasons = check(o, ctx(position=D("0.01")))
    assert f"stop price is required for a {kind} order and must be > 0, got {bad}" in reasons, reasons


def test_valid_prices_pass_for_every_type() -> None:
    pos = ctx(position=D("0.01"))
    assert_passes(order(side="sell", type="limit", price="51000"), pos)
    assert_passes(order(side="sell", type="stop", stop="50999.9"), pos)
    assert_passes(order(side="sell", type="stop_limit", stop="50000", price="49990"), pos)
    assert_passes(order(side="sell", type="take_profit", stop="51000.1"), pos)


def test_take_profit_with_nan_limit_price_gives_a_reason_not_an_exception() -> None:
    o = order(side="sell", type="take_profit", stop="52000", price="52000")
    o.price = D("NaN")
    reasons = check(o, ctx(position=D("0.01")))
    assert any("price" in r for r in reasons)


def test_take_profit_with_zero_limit_price_is_refused() -> None:
    o = order(side="sell", type="take_profit", stop="52000", price="52000")
    o.price = D(0)
    assert check(o, ctx(position=D("0.01"))) != []


# -- precision: tick and lot ----------------------------------------------------------------


def test_amount_finer_than_the_lot_is_refused() -> None:
    assert only_reason(order(amount="0.01005")) == "amount 0.01005 is finer than the lot size 0.0001"


def test_price_finer_than_the_tick_is_refused() -> None:
    assert only_reason(order(type="limit", price="51000.05")) == "price 51000.05 is finer than the tick size 0.1"


def test_stop_finer_than_the_tick_is_refused() -> None:
    reason = only_reason(order(side="sell", type="stop", stop="50000.05"))
    assert reason == "stop price 50000.05 is finer than the tick size 0.1"


def test_exact_multiples_of_tick_and_lot_pass() -> None:
    assert_passes(order(amount="0.0101", type="limit", price="51000.1"))
    assert_passes(order(side="sell", amount="0.0101", type="stop", stop="50000.1"))


# -- venue minimum and maximum --------------------------------------------------------------


def test_amount_below_the_venue_minimum_is_refused_and_at_it_passes() -> None:
    c = ctx(market=market(min_amount="0.001"))
    assert only_reason(order(amount="0.0009"), c) == "amount 0.0009 is below the venue's minimum 0.001"
    assert_passes(order(amount="0.001"), c)


def test_notional_below_the_venue_minimum_is_refused_and_at_it_passes() -> None:
    c = ctx(market=market(min_notional="10"), last=D(50000))
    reason = only_reason(order(amount="0.0001", type="limit", price="50000"), c)
    assert figure(reason, r"order notional (\S+) is below the venue's minimum 10 USDT$") == 5
    assert_passes(order(amount="0.0002", type="limit", price="50000"), c)  # exactly 10 USDT


def test_amount_above_the_venue_maximum_is_refused_and_at_it_passes() -> None:
    c = ctx(market=market(max_amount="1"))
    assert only_reason(order(amount="1.0001"), c) == "amount 1.0001 is above the venue's maximum 1"
    assert_passes(order(amount="1"), c)


def test_unknown_symbol_is_refused() -> None:
    assert "unknown symbol BTC/USDT" in check(order(), ctx(market=None))


def test_market_order_with_no_known_price_is_refused() -> None:
    assert check(order(), ctx(last=None)) == ["no price known for BTC/USDT yet: cannot value the order"]


# -- max_order_notional ---------------------------------------------------------------------


def test_order_notional_exactly_at_the_limit_passes() -> None:
    assert_passes(order(amount="0.1"), max_order_notional=D(5100))  # 0.1 x 51000 = 5100


def test_order_notional_one_lot_over_the_limit_is_refused() -> None:
    reason = only_reason(order(amount="0.1001"), max_order_notional=D(5100))
    assert figure(reason, r"order notional (\S+) is above max_order_notional 5100$") == D("5105.1")


def test_order_notional_one_tick_over_the_limit_is_refused() -> None:
    reason = only_reason(order(amount="0.1", type="limit", price="51000.1"), max_order_notional=D(5100))
    assert figure(reason, r"order notional (\S+) is above max_order_notional 5100$") == D("5100.01")


def test_order_notional_uses_the_stop_price_for_stop_orders() -> None:
    o = order(side="sell", type="stop", amount="0.1", stop="50000")
    assert_passes(o, max_order_notional=D(5000))
    assert "above max_order_notional 4999" in only_reason(o, max_order_notional=D(4999))


# -- max_position_notional ------------------------------------------------------------------


def test_position_notional_exactly_at_the_limit_passes() -> None:
    assert_passes(order(amount="0.1"), ctx(position=D("0.1")), max_position_notional=D(10200))


def test_position_notional_over_the_limit_is_refused() -> None:
    reason = only_reason(order(amount="0.1001"), ctx(position=D("0.1")), max_position_notional=D(10200))
    pattern = r"resulting BTC/USDT position notional (\S+) is above max_position_notional 10200$"
    assert figure(reason, pattern) == D("10205.1")


def test_position_notional_over_the_limit_for_a_short_is_refused() -> None:
    reason = only_reason(order(side="sell", amount="0.1001"), ctx(position=D("-0.1")), max_position_notional=D(10200))
    assert "above max_position_notional 10200" in reason


def test_position_notional_is_only_checked_when_the_position_grows() -> None:
    big = ctx(position=D(1), exposure=D(51000))  # 51,000 USDT: already far above the 1,000 limit
    assert_passes(order(side="sell", amount="0.5"), big, max_position_notional=D(1000))
    assert "max_position_notional" in only_reason(order(side="buy", amount="0.0001"), big, max_position_notional=D(1000))


# -- max_exposure_pct -----------------------------------------------------------------------


def test_exposure_exactly_at_the_limit_passes() -> None:
    c = ctx(equity=D(10_000), exposure=D(4900))
    assert_passes(order(amount="0.1"), c, max_exposure_pct=D(100))  # 4900 + 5100 = 100% of equity


def test_exposure_over_the_limit_is_refused() -> None:
    c = ctx(equity=D(10_000), exposure=D(4900))
    reason = only_reason(order(amount="0.1001"), c, max_exposure_pct=D(100))
    assert reason == "total exposure would be 100.1% of equity, above max_exposure_pct 100%"


def test_exposure_check_does_not_block_an_order_that_lowers_exposure() -> None:
    c = ctx(equity=D(10_000), exposure=D(30_000), position=D("0.5"))  # already at 300%
    assert_passes(order(side="sell", amount="0.2"), c, max_exposure_pct=D(100))


# -- leverage -------------------------------------------------------------------------------


def test_leverage_at_the_configured_maximum_passes_and_above_is_refused() -> None:
    assert_passes(order(leverage=D(5)), max_leverage=D(5))
    assert only_reason(order(leverage=D("5.1")), max_leverage=D(5)) == "leverage 5.1 is above max_leverage 5"


def test_leverage_at_the_venue_maximum_passes_and_above_is_refused() -> None:
    assert_passes(order(leverage=D(20)), max_leverage=D(50))
    assert only_reason(order(leverage=D(21)), max_leverage=D(50)) == "leverage 21 is above the venue's maximum 20"


def test_leverage_above_both_limits_gives_both_reasons() -> None:
    reasons = check(order(leverage=D(25)))
    assert "leverage 25 is above max_leverage 10" in reasons
    assert "leverage 25 is above the venue's maximum 20" in reasons


# -- free margin ----------------------------------------------------------------------------


def test_order_needing_exactly_the_free_margin_passes() -> None:
    assert_passes(order(amount="0.1"), ctx(free_margin=D(5100)))
    assert_passes(order(amount="0.1", leverage=D(2)), ctx(free_margin=D(2550)))


def test_insufficient_free_margin_is_refused() -> None:
    reason = only_reason(order(amount="0.1"), ctx(free_margin=D("5099.99")))
    assert reason == "insufficient free margin: the order needs 5100.00 USDT, free margin is 5099.99 USDT"
    reason = only_reason(order(amount="0.1", leverage=D(2)), ctx(free_margin=D("2549.99")))
    assert "needs 2550.00 USDT" in reason


def test_reducing_orders_need_no_free_margin() -> None:
    broke = ctx(position=D("0.1"), free_margin=D(-500), exposure=D(5100))
    assert_passes(order(side="sell", amount="0.1"), broke)
    assert_passes(order(side="sell", amount="0.05", reduce_only=True), broke)
    assert "insufficient free margin" in only_reason(order(side="buy", amount="0.01"), broke)


# -- fat-finger band (limit orders) ---------------------------------------------------------


@pytest.mark.parametrize(("side", "price"), [("buy", "53550"), ("sell", "48450"), ("buy", "48450"), ("sell", "53550")])
def test_limit_price_exactly_at_the_band_passes(side: str, price: str) -> None:
    assert_passes(order(side=side, type="limit", price=price), ctx(position=D(1)))  # 51000 +- 5%


@pytest.mark.parametrize(("side", "price"), [("buy", "53550.1"), ("sell", "48449.9")])
def test_limit_price_just_outside_the_band_is_refused(side: str, price: str) -> None:
    reason = only_reason(order(side=side, type="limit", price=price), ctx(position=D(1)))
    assert reason == f"limit price {price} is more than 5% from the last price 51000 (fat-finger band)"


def test_band_follows_price_band_pct() -> None:
    o = order(type="limit", price="52020")  # 2% above
    assert_passes(o, price_band_pct=D(2))
    assert "more than 1.9% from the last price" in only_reason(o, price_band_pct=D("1.9"))


def test_band_is_not_applied_to_market_orders_or_without_a_last_price() -> None:
    assert_passes(order(amount="0.01"), price_band_pct=D("0.001"))
    assert_passes(order(type="limit", price="70000"), ctx(last=None))


# -- stop and take-profit side vs the last price ---------------------------------------------


def test_sell_stop_must_be_below_the_last_price() -> None:
    assert_passes(order(side="sell", type="stop", stop="50999.9"))
    reason = only_reason(order(side="sell", type="stop", stop="51000"))
    assert reason == "stop 51000 is on the wrong side of the last price 51000: a sell stop must be below it"
    assert "a sell stop must be below it" in only_reason(order(side="sell", type="stop", stop="51500"))


def test_buy_stop_must_be_above_the_last_price() -> None:
    assert_passes(order(side="buy", type="stop", stop="51000.1"))
    reason = only_reason(order(side="buy", type="stop", stop="51000"))
    assert reason == "stop 51000 is on the wrong side of the last price 51000: a buy stop must be above it"


def test_stop_limit_side_is_checked_on_the_trigger() -> None:
    assert_passes(order(side="sell", type="stop_limit", stop="50900", price="50800"))
    assert "a sell stop must be below it" in only_reason(order(side="sell", type="stop_limit", stop="51100", price="51000"))


def test_sell_take_profit_must_be_above_the_last_price() -> None:
    long = ctx(position=D("0.01"))
    assert_passes(order(side="sell", type="take_profit", stop="51000.1"), long)
    reason = only_reason(order(side="sell", type="take_profit", stop="51000"), long)
    assert reason == "take-profit 51000 is on the wrong side of the last price 51000: it must be above it"


def test_buy_take_profit_must_be_below_the_last_price() -> None:
    short = ctx(position=D("-0.01"))
    assert_passes(order(side="buy", type="take_profit", stop="50999.9"), short)
    reason = only_reason(order(side="buy", type="take_profit", stop="51000"), short)
    assert reason == "take-profit 51000 is on the wrong side of the last price 51000: it must be below it"


# -- reduce-only ----------------------------------------------------------------------------


def test_reduce_only_with_no_position_is_refused() -> None:
    reason = only_reason(order(side="sell", reduce_only=True))
    assert reason == "reduce-only order but there is no BTC/USDT position to reduce"


@pytest.mark.parametrize(("side", "amount", "position"), [("buy", "0.01", "0.1"), ("sell", "0.2", "0.1"), ("sell", "0.01", "-0.1")])
def test_reduce_only_that_would_increase_or_flip_is_refused(side: str, amount: str, position: str) -> None:
    reason = only_reason(order(side=side, amount=amount, reduce_only=True), ctx(position=D(position), exposure=D(5100)))
    assert reason == "reduce-only order would increase or flip the BTC/USDT position"


@pytest.mark.parametrize(("side", "amount", "position"), [("sell", "0.1", "0.1"), ("buy", "0.1", "-0.1"), ("sell", "0.05", "0.1")])
def test_reduce_only_that_reduces_passes(side: str, amount: str, position: str) -> None:
    assert_passes(order(side=side, amount=amount, reduce_only=True), ctx(position=D(position), exposure=D(5100)))


# -- duplicate client order id --------------------------------------------------------------


def test_duplicate_client_order_id_is_refused() -> None:
    o = order(client_order_id="abc1")
    assert only_reason(o, ctx(duplicate_client_id=True)) == "duplicate client order id abc1"
    assert_passes(o, ctx(duplicate_client_id=False))


# -- trading state --------------------------------------------------------------------------


def test_halted_refuses_every_order_even_a_reducing_one() -> None:
    halted = ctx(state=TradingState.HALTED, position=D("0.1"), exposure=D(5100))
    msg = "trading is HALTED: no new orders until an explicit resume"
    assert only_reason(order(), halted) == msg
    assert only_reason(order(side="sell", amount="0.1", reduce_only=True), halted) == msg


def test_halted_lets_the_halts_own_closing_orders_through() -> None:
    closing = ctx(state=TradingState.HALTED, position=D("0.1"), exposure=D(5100), closing=True)
    assert_passes(order(side="sell", amount="0.1", reduce_only=True), closing)


def test_reducing_passes_only_orders_that_reduce() -> None:
    reducing = ctx(state=TradingState.REDUCING, position=D("0.1"), exposure=D(5100))
    msg = "trading is REDUCING: only orders that reduce an open position are allowed"
    assert_passes(order(side="sell", amount="0.1"), reducing)
    assert_passes(order(side="sell", amount="0.05"), reducing)
    assert only_reason(order(side="buy", amount="0.01"), reducing) == msg
    assert only_reason(order(side="sell", amount="0.2"), reducing) == msg  # would flip
    assert only_reason(order(side="sell"), ctx(state=TradingState.REDUCING)) == msg  # no position


# -- max_orders_per_second ------------------------------------------------------------------


def test_rate_limit_passes_n_orders_within_a_second_then_refuses_until_the_window_moves() -> None:
    clock = ManualClock()
    risk = engine_for(clock, max_orders_per_second=3)
    for _ in range(3):
        assert risk.check(order(), ctx()) == []
        clock.advance(0.25)
    # t = 0.75: three orders in the last second
    assert risk.check(order(), ctx()) == ["order rate above max_orders_per_second 3: throttled"]
    clock.advance(0.2)  # t = 0.95: still all three inside the window
    assert risk.check(order(), ctx()) != []
    clock.advance(0.05)  # t = 1.0: the first order has left the window
    assert risk.check(order(), ctx()) == []
    assert risk.check(order(), ctx()) != []  # and its slot is taken again


def test_rate_limit_recovers_after_a_full_second() -> None:
    clock = ManualClock()
    risk = engine_for(clock, max_orders_per_second=2)
    assert [risk.check(order(), ctx()) for _ in range(3)] == [[], [], ["order rate above max_orders_per_second 2: throttled"]]
    clock.advance(1)
    assert [risk.check(order(), ctx()) for _ in range(3)] == [[], [], ["order rate above max_orders_per_second 2: throttled"]]


def test_previews_and_refused_orders_do_not_use_up_the_rate_limit() -> None:
    risk = engine_for(max_orders_per_second=2)
    for _ in range(10):
        assert risk.check(order(), ctx(), record=False) == []
        assert risk.check(order(amount="0.01005"), ctx()) != []
    assert risk.check(order(), ctx()) == []
    assert risk.check(order(), ctx()) == []
    assert "throttled" in risk.check(order(), ctx())[0]


# -- several problems at once ---------------------------------------------------------------


def test_every_problem_comes_back_together() -> None:
    o = order(type="limit", amount="0.00015", price="60000.05", leverage=D(25), client_order_id="dup1")
    reasons = check(o, ctx(state=TradingState.HALTED, duplicate_client_id=True))
    expected = [
        "trading is HALTED",
        "duplicate client order id dup1",
        "amount 0.00015 is finer than the lot size",
        "price 60000.05 is finer than the tick size",
        "leverage 25 is above max_leverage 10",
        "leverage 25 is above the venue's maximum 20",
        "fat-finger band",
    ]
    for text in expected:
        assert sum(text in r for r in reasons) == 1, (text, reasons)
    assert len(reasons) >= 3 and len(set(reasons)) == len(reasons)


def test_problems_with_nan_amount_and_missing_price_come_back_together() -> None:
    o = order(side="sell", type="stop_limit", stop="50000", price="49000", reduce_only=True)
    o.amount = D("NaN")
    o.price = None
    o.stop_price = D("Infinity")
    reasons = check(o)
    assert "amount must be a finite number > 0, got NaN" in reasons
    assert "price is required for a stop_limit order" in reasons
    assert "stop price is required for a stop_limit order and must be > 0, got Infinity" in reasons
    assert "reduce-only order but there is no BTC/USDT position to reduce" in reasons


# -- round_to_market ------------------------------------------------------------------------


def test_round_to_market_snaps_a_buy_down() -> None:
    risk = engine_for(round_to_market=True)
    o = order(type="limit", amount="0.12345", price="51000.07")
    notes = risk.round_to_market(o, BTC)
    assert (o.amount, o.price) == (D("0.1234"), D("51000.0"))
    assert notes == [
        "amount rounded from 0.12345 to 0.1234 (lot size 0.0001)",
        "price rounded from 51000.07 to 51000.0 (tick size 0.1)",
    ]
    assert risk.check(o, ctx()) == []


def test_round_to_market_snaps_a_sell_price_up_and_amount_down() -> None:
    risk = engine_for(round_to_market=True)
    o = order(side="sell", type="stop_limit", amount="0.01009", price="50000.01", stop="50100.01")
    notes = risk.round_to_market(o, BTC)
    assert (o.amount, o.price, o.stop_price) == (D("0.01"), D("50000.1"), D("50100.1"))
    assert len(notes) == 3 and "stop price rounded from 50100.01 to 50100.1" in notes[2]


def test_round_to_market_snaps_a_buy_stop_down() -> None:
    o = order(type="stop", stop="51000.19")
    engine_for().round_to_market(o, BTC)
    assert o.stop_price == D("51000.1")


def test_round_to_market_leaves_aligned_orders_alone() -> None:
    o = order(type="limit", amount="0.0100", price="51000.10")
    assert engine_for().round_to_market(o, BTC) == []
    assert (o.amount, o.price) == (D("0.01"), D("51000.1"))


# -- helpers --------------------------------------------------------------------------------


def test_protective_problems_long() -> None:
    assert protective_problems(Side.BUY, D(100), D(90), D(110)) == []
    assert protective_problems(Side.BUY, D(100), None, None) == []
    assert protective_problems(Side.BUY, D(100), D(100), None) == [
        "stop-loss 100 is on the wrong side of entry 100: it must be below it for a long"
    ]
    assert protective_problems(Side.BUY, D(100), None, D(99)) == [
        "take-profit 99 is on the wrong side of entry 100: it must be above it for a long"
    ]
    assert len(protective_problems(Side.BUY, D(100), D(101), D(99))) == 2


def test_protective_problems_short() -> None:
    assert protective_problems(Side.SELL, D(100), D(110), D(90)) == []
    assert protective_problems(Side.SELL, D(100), D(90), None) == [
        "stop-loss 90 is on the wrong side of entry 100: it must be above it for a short"
    ]
    assert protective_problems(Side.SELL, D(100), None, D(100)) == [
        "take-profit 100 is on the wrong side of entry 100: it must be below it for a short"
    ]
    assert len(protective_problems(Side.SELL, D(100), D(99), D(101))) == 2


@pytest.mark.parametrize(
    ("side", "amount", "position", "expected"),
    [
        (Side.SELL, "1", "2", True),
        (Side.SELL, "2", "2", True),
        (Side.SELL, "2.1", "2", False),  # would flip
        (Side.BUY, "1", "2", False),  # adds
        (Side.BUY, "1", "-2", True),
        (Side.BUY, "3", "-2", False),
        (Side.SELL, "1", "-2", False),
        (Side.BUY, "1", "0", False),
        (Side.SELL, "1", "0", False),
    ],
)
def test_reduces_position(side: Side, amount: str, position: str, expected: bool) -> None:
    assert reduces_position(side, D(amount), D(position)) is expected


# -- through the engine ---------------------------------------------------------------------


async def test_refused_order_is_journaled_with_reasons_and_never_sent(engine: Engine) -> None:
    before = engine.venue.requests  # type: ignore[attr-defined]
    request = OrderRequest(symbol="BTC/USDT", side="buy", type="limit", amount=D("0.00015"), price=D("60000.05"))
    placed = await engine.place_order(request)
    assert placed.status is OrderStatus.REJECTED
    events = await engine.journal.events(order_id=placed.id)  # type: ignore[union-attr]
    assert [e["kind"] for e in events] == ["risk_refused"]
    reasons = events[0]["data"]["reasons"]
    assert "amount 0.00015 is finer than the lot size 0.0001" in reasons
    assert "price 60000.05 is finer than the tick size 0.1" in reasons
    assert any("fat-finger band" in r for r in reasons)
    assert placed.error == "refused: " + "; ".join(reasons)
    assert engine.venue.requests == before  # type: ignore[attr-defined]
    assert engine.check_order(request) == reasons


async def test_check_order_previews_without_using_up_the_rate_limit(db: Path, clock: ManualClock) -> None:
    settings = Settings(risk=RiskLimits(max_orders_per_second=2))
    async with Engine.paper(db=db, seed=7, clock=clock, settings=settings) as engine:
        request = OrderRequest(symbol="BTC/USDT", side="buy", type="market", amount=D("0.01"))
        for _ in range(5):
            assert engine.check_order(request) == []
        first = await engine.place_order(request)
        second = await engine.place_order(request)
        assert first.status is OrderStatus.FILLED and second.status is OrderStatus.FILLED
        assert engine.check_order(request) == ["order rate above max_orders_per_second 2: throttled"]
        third = await engine.place_order(request)
        assert third.status is OrderStatus.REJECTED and "throttled" in (third.error or "")
        clock.advance(1)
        assert engine.check_order(request) == []


async def test_engine_risk_context_reflects_position_and_state(engine: Engine) -> None:
    await engine.place_market_order("BTC/USDT", "buy", D("0.1"))
    await engine.set_reducing("test")
    sell = OrderRequest(symbol="BTC/USDT", side="sell", type="market", amount=D("0.1"))
    buy = OrderRequest(symbol="BTC/USDT", side="buy", type="market", amount=D("0.01"))
    assert engine.check_order(sell) == []
    assert engine.check_order(buy) == ["trading is REDUCING: only orders that reduce an open position are allowed"]
    too_much = OrderRequest(symbol="BTC/USDT", side="sell", type="market", amount=D("0.2"), reduce_only=True)
    assert "reduce-only order would increase or flip the BTC/USDT position" in engine.check_order(too_much)


async def test_engine_refuses_a_reused_client_order_id(engine: Engine) -> None:
    request = OrderRequest(symbol="BTC/USDT", side="buy", type="limit", amount=D("0.01"), price=D(50000), client_order_id="abc1")
    first = await engine.place_order(request)
    assert first.status is OrderStatus.OPEN
    assert engine.check_order(request) == ["duplicate client order id abc1"]
    second = await engine.place_order(request)
    assert second.status is OrderStatus.REJECTED and "duplicate client order id abc1" in (second.error or "")


async def test_check_order_matches_placing_when_round_to_market_is_on(db: Path, clock: ManualClock) -> None:
    settings = Settings(risk=RiskLimits(round_to_market=True))
    async with Engine.paper(db=db, seed=7, clock=clock, settings=settings) as engine:
        request = OrderRequest(symbol="BTC/USDT", side="buy", type="limit", amount=D("0.01005"), price=D("50000.05"))
        placed = await engine.place_order(request)
        assert placed.status is OrderStatus.OPEN and (placed.amount, placed.price) == (D("0.01"), D("50000.0"))
        assert engine.check_order(request) == []
