"""Signal confirmation (core.signals) and execution through the engine: every filter refuses with
a reason naming it, all reasons come back together, and a confirmed signal becomes an entry plus
reduce-only protective orders sized to what filled."""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from core import Engine, ManualClock, OrderStatus, OrderType, Side, TradingState
from core.config import Settings, SignalFilters
from core.signals import Direction, Signal, SignalVerdict, Sizing, screen_signal
from core.venues.base import Quote

NARROW = Quote("BTC/USDT", D("50999.9"), D("51000.1"), D(51000))


def sig(clock: ManualClock, direction: str = "long", strength: float = 0.8, age: float = 0, **kw: Any) -> Signal:
    return Signal(
        symbol="BTC/USDT", direction=direction, strength=strength,  # type: ignore[arg-type]
        timestamp=clock.now() - timedelta(seconds=age), **kw,
    )


def screen(signal: Signal, now: datetime, **kw: Any) -> SignalVerdict:
    args: dict[str, Any] = dict(
        filters=SignalFilters(), now=now, state=TradingState.ACTIVE, quote=NARROW, prices=[],
        last_trade_at=None, has_position=False,
    )
    args.update(kw)
    return screen_signal(signal, **args)


def only_reason(verdict: SignalVerdict) -> str:
    assert not verdict.confirmed and verdict.score == 0.0
    assert len(verdict.reasons) == 1, verdict.reasons
    return verdict.reasons[0]


def rising(n: int, start: int = 51000, step: str = "1") -> list[D]:
    return [D(start) + D(step) * i for i in range(n)]


async def events_of(engine: Engine, kind: str) -> list[dict[str, Any]]:
    return [e for e in await engine.journal.events() if e["kind"] == kind]  # type: ignore[union-attr]


# -- the Signal model -------------------------------------------------------------------------


def test_signal_stop_loss_on_the_wrong_side_of_entry_is_a_validation_error(clock: ManualClock) -> None:
    with pytest.raises(ValidationError, match="stop-loss 51500 is on the wrong side of entry 51000: it must be below it for a long"):
        sig(clock, entry=D(51000), stop_loss=D(51500))
    with pytest.raises(ValidationError, match="stop-loss 50500 is on the wrong side of entry 51000: it must be above it for a short"):
        sig(clock, "short", entry=D(51000), stop_loss=D(50500))


def test_signal_take_profit_on_the_wrong_side_of_entry_is_a_validation_error(clock: ManualClock) -> None:
    with pytest.raises(ValidationError, match="take-profit 50000 is on the wrong side of entry 51000"):
        sig(clock, entry=D(51000), take_profit=D(50000))


def test_signal_with_protective_levels_on_the_right_sides_is_valid(clock: ManualClock) -> None:
    s = sig(clock, entry=D(51000), stop_loss=D(50000), take_profit=D(52000))
    assert (s.stop_loss, s.take_profit) == (D(50000), D(52000))
    assert sig(clock, "short", entry=D(51000), stop_loss=D(52000), take_profit=D(50000)).direction is Direction.SHORT
    assert Signal(symbol=" btc/usdt ", direction="long", strength=1, timestamp=clock.now()).symbol == "BTC/USDT"  # type: ignore[arg-type]


def test_signal_strength_must_be_within_0_and_1(clock: ManualClock) -> None:
    with pytest.raises(ValidationError, match="strength"):
        sig(clock, strength=1.5)


def test_sizing_needs_exactly_one_of_fraction_or_amount() -> None:
    with pytest.raises(ValidationError, match="exactly one of equity_fraction or amount"):
        Sizing()
    with pytest.raises(ValidationError, match="exactly one of equity_fraction or amount"):
        Sizing(amount=D(1), equity_fraction=D("0.1"))
    with pytest.raises(ValidationError, match="equity_fraction must be in"):
        Sizing(equity_fraction=D("1.5"))


# -- each filter, directly ------------------------------------------------------------------


def test_strength_below_the_minimum_is_refused_and_at_it_passes(clock: ManualClock) -> None:
    assert only_reason(screen(sig(clock, strength=0.49), clock.now())) == "strength 0.49 is below the minimum 0.50"
    assert screen(sig(clock, strength=0.5), clock.now()).confirmed


def test_stale_signal_is_refused_and_one_at_the_age_limit_passes(clock: ManualClock) -> None:
    reason = only_reason(screen(sig(clock, age=31), clock.now()))
    assert reason == "signal is stale: 31 s old, the limit is 30 s"
    assert screen(sig(clock, age=30), clock.now()).confirmed


def test_cooldown_after_a_trade_refuses_opening_signals_only(clock: ManualClock) -> None:
    now = clock.now()
    reason = only_reason(screen(sig(clock), now, last_trade_at=now - timedelta(seconds=59)))
    assert reason == "cooldown: last BTC/USDT trade 59 s ago, wait 60 s"
    assert screen(sig(clock), now, last_trade_at=now - timedelta(seconds=60)).confirmed
    close = sig(clock, "close")
    assert screen(close, now, last_trade_at=now, has_position=True).confirmed


def test_spread_wider_than_the_limit_is_refused_and_at_it_passes(clock: ManualClock) -> None:
    wide = Quote("BTC/USDT", D("99.8"), D("100.2"), D(100))  # 0.4% of the mid
    assert only_reason(screen(sig(clock), clock.now(), quote=wide)) == "spread 0.400% is wider than 0.2%"
    at_limit = Quote("BTC/USDT", D("99.9"), D("100.1"), D(100))  # exactly 0.2%
    assert screen(sig(clock), clock.now(), quote=at_limit).confirmed


def test_no_quote_is_refused(clock: ManualClock) -> None:
    assert only_reason(screen(sig(clock), clock.now(), quote=None)) == "no market data for BTC/USDT"


def _std_pct(prices: list[D]) -> float:
    rets = [float(b / a) - 1 for a, b in zip(prices, prices[1:], strict=False)]
    return statistics.stdev(rets) * 100


def test_volatility_above_the_band_is_refused_and_just_inside_passes(clock: ManualClock) -> None:
    prices = [D(p) for p in ("100", "103", "99", "104", "98", "102")]
    vol = _std_pct(prices)
    assert 2 < vol < 5
    below = SignalFilters(max_volatility_pct=D(str(round(vol - 0.01, 2))), require_trend_alignment=False)
    reason = only_reason(screen(sig(clock), clock.now(), prices=prices, filters=below))
    assert reason == f"volatility {vol:.3f}% is outside the band 0%..{below.max_volatility_pct}%"
    above = SignalFilters(max_volatility_pct=D(str(round(vol + 0.01, 2))), require_trend_alignment=False)
    verdict = screen(sig(clock), clock.now(), prices=prices, filters=above)
    assert verdict.confirmed and f"volatility {vol:.4f}%" in verdict.notes


def test_volatility_below_the_band_is_refused(clock: ManualClock) -> None:
    filters = SignalFilters(min_volatility_pct=D("0.5"), require_trend_alignment=False)
    flat = [D(100)] * 10
    assert only_reason(screen(sig(clock), clock.now(), prices=flat, filters=filters)) == (
        "volatility 0.000% is outside the band 0.5%..5%"
    )


def test_volatility_uses_only_the_last_window_of_prices(clock: ManualClock) -> None:
    filters = SignalFilters(volatility_window=5, require_trend_alignment=False)
    wild_then_calm = [D(100), D(150), D(80), D(160)] + rising(10, 100, "0.01")
    assert screen(sig(clock), clock.now(), prices=wild_then_calm, filters=filters).confirmed
    assert not screen(sig(clock), clock.now(), prices=wild_then_calm, filters=SignalFilters(require_trend_alignment=False)).confirmed


def test_rising_prices_refuse_a_short_and_confirm_a_long(clock: ManualClock) -> None:
    filters = SignalFilters(trend_window=5)
    prices = rising(5)
    reason = only_reason(screen(sig(clock, "short"), clock.now(), prices=prices, filters=filters))
    assert reason == "against the trend: short while price is above its 5-step mean"
    long = screen(sig(clock, "long"), clock.now(), prices=prices, filters=filters)
    assert long.confirmed and any(n.startswith("trend up") for n in long.notes)


def test_falling_prices_refuse_a_long_and_confirm_a_short(clock: ManualClock) -> None:
    filters = SignalFilters(trend_window=5)
    prices = list(reversed(rising(5)))
    assert "against the trend: long while price is below its 5-step mean" == only_reason(
        screen(sig(clock, "long"), clock.now(), prices=prices, filters=filters)
    )
    assert screen(sig(clock, "short"), clock.now(), prices=prices, filters=filters).confirmed


def test_trend_is_not_judged_on_fewer_prices_than_the_window_or_when_not_required(clock: ManualClock) -> None:
    assert screen(sig(clock, "short"), clock.now(), prices=rising(4), filters=SignalFilters(trend_window=5)).confirmed
    off = SignalFilters(trend_window=5, require_trend_alignment=False)
    assert screen(sig(clock, "short"), clock.now(), prices=rising(5), filters=off).confirmed


def test_halted_refuses_every_signal(clock: ManualClock) -> None:
    assert only_reason(screen(sig(clock), clock.now(), state=TradingState.HALTED)) == "trading is HALTED"
    assert only_reason(screen(sig(clock, "close"), clock.now(), state=TradingState.HALTED, has_position=True)) == (
        "trading is HALTED"
    )


def test_reducing_passes_only_closing_signals(clock: ManualClock) -> None:
    reason = only_reason(screen(sig(clock, "short"), clock.now(), state=TradingState.REDUCING))
    assert reason == "trading is REDUCING: only closing signals pass"
    assert screen(sig(clock, "close"), clock.now(), state=TradingState.REDUCING, has_position=True).confirmed


def test_close_signal_without_a_position_is_refused(clock: ManualClock) -> None:
    assert only_reason(screen(sig(clock, "close"), clock.now())) == "close signal but there is no BTC/USDT position"
    assert screen(sig(clock, "close"), clock.now(), has_position=True).confirmed


def test_every_reason_comes_back_at_once(clock: ManualClock) -> None:
    now = clock.now()
    verdict = screen(
        sig(clock, "short", strength=0.1, age=120), now,
        state=TradingState.HALTED,
        last_trade_at=now - timedelta(seconds=5),
        quote=Quote("BTC/USDT", D(99), D(101), D(100)),
        prices=[D(100), D(110), D(100), D(110), D(120)],
        filters=SignalFilters(trend_window=5),
    )
    assert not verdict.confirmed and verdict.score == 0.0
    starts = ["trading is HALTED", "strength 0.10 is below", "signal is stale: 120 s old", "cooldown: last BTC/USDT trade 5 s ago",
              "spread 2.000% is wider than 0.2%", "volatility ", "against the trend: short"]
    assert len(verdict.reasons) == len(starts)
    for start, reason in zip(starts, verdict.reasons, strict=True):
        assert reason.startswith(start), (start, reason)


def test_stronger_confirmed_signals_score_higher(clock: ManualClock) -> None:
    scores = [screen(sig(clock, strength=s), clock.now()).score for s in (0.5, 0.6, 0.8, 1.0)]
    assert scores == sorted(scores) and len(set(scores)) == 4
    assert all(0 < s <= 1 for s in scores)
    assert scores[-1] == pytest.approx(1.0, abs=1e-3)  # a tiny spread costs almost nothing


def test_a_wider_spread_lowers_the_score(clock: ManualClock) -> None:
    tight = screen(sig(clock, strength=0.8), clock.now(), quote=Quote("BTC/USDT", D("99.99"), D("100.01"), D(100)))
    wide = screen(sig(clock, strength=0.8), clock.now(), quote=Quote("BTC/USDT", D("99.9"), D("100.1"), D(100)))
    assert tight.confirmed and wide.confirmed
    assert wide.score < tight.score
    assert wide.score == pytest.approx(0.8 * (1 - 0.2), abs=1e-4)  # spread at the limit costs 20%
    assert tight.score == pytest.approx(0.8 * (1 - 0.02), abs=1e-4)


def test_trend_alignment_raises_the_score(clock: ManualClock) -> None:
    filters = SignalFilters(trend_window=5)
    aligned = screen(sig(clock, strength=0.6), clock.now(), prices=rising(5), filters=filters)
    unjudged = screen(sig(clock, strength=0.6), clock.now(), prices=rising(4), filters=filters)
    assert aligned.score > unjudged.score


def test_stronger_trend_aligned_signals_still_rank_higher(clock: ManualClock) -> None:
    filters = SignalFilters(trend_window=5)
    weaker = screen(sig(clock, strength=0.95), clock.now(), prices=rising(5), filters=filters)
    stronger = screen(sig(clock, strength=1.0), clock.now(), prices=rising(5), filters=filters)
    assert weaker.confirmed and stronger.confirmed
    assert stronger.score > weaker.score


# -- through the engine: check_signal ----------------------------------------------------------


async def test_check_signal_confirms_a_fresh_signal(engine: Engine, clock: ManualClock) -> None:
    verdict = await engine.check_signal(sig(clock))
    assert verdict.confirmed and verdict.reasons == [] and 0.79 < verdict.score <= 0.8


async def test_check_signal_stale_by_the_engine_clock(engine: Engine, clock: ManualClock) -> None:
    s = sig(clock)
    clock.advance(30)
    assert (await engine.check_signal(s)).confirmed
    clock.advance(1)
    assert (await engine.check_signal(s)).reasons == ["signal is stale: 31 s old, the limit is 30 s"]


async def test_check_signal_cooldown_after_a_trade(engine: Engine, clock: ManualClock) -> None:
    assert (await engine.place_market_order("BTC/USDT", "buy", D("0.01"))).status is OrderStatus.FILLED
    assert (await engine.check_signal(sig(clock))).reasons == ["cooldown: last BTC/USDT trade 0 s ago, wait 60 s"]
    assert (await engine.check_signal(sig(clock, "close"))).confirmed  # closing is not held back
    clock.advance(59)
    assert (await engine.check_signal(sig(clock))).reasons == ["cooldown: last BTC/USDT trade 59 s ago, wait 60 s"]
    clock.advance(1)
    assert (await engine.check_signal(sig(clock))).confirmed
    other = Signal(symbol="ETH/USDT", direction="long", strength=0.8, timestamp=clock.now())  # type: ignore[arg-type]
    assert (await engine.check_signal(other)).confirmed


async def test_check_signal_trend_from_the_engines_price_history(engine: Engine, clock: ManualClock) -> None:
    # The history starts with the start price; 119 scripted steps make the 120 the trend needs.
    engine.venue.market.script("BTC/USDT", rising(119, 51001))  # type: ignore[attr-defined]
    short, long = sig(clock, "short"), sig(clock, "long")
    for _ in range(118):
        await engine.tick()
    assert (await engine.check_signal(short)).confirmed  # 119 prices: too few to judge the trend
    await engine.tick()
    verdict = await engine.check_signal(short)
    assert verdict.reasons == ["against the trend: short while price is above its 120-step mean"]
    assert (await engine.check_signal(long)).confirmed


async def test_check_signal_trading_states(engine: Engine, clock: ManualClock) -> None:
    await engine.place_market_order("BTC/USDT", "buy", D("0.01"))
    clock.advance(60)
    await engine.set_reducing("test")
    assert (await engine.check_signal(sig(clock))).reasons == ["trading is REDUCING: only closing signals pass"]
    assert (await engine.check_signal(sig(clock, "close"))).confirmed
    await engine.halt_trading("test")
    assert (await engine.check_signal(sig(clock, "close"))).reasons == ["trading is HALTED"]


async def test_check_signal_close_without_a_position(engine: Engine, clock: ManualClock) -> None:
    assert (await engine.check_signal(sig(clock, "close"))).reasons == ["close signal but there is no BTC/USDT position"]


async def test_check_signal_unknown_symbol_has_no_market_data(engine: Engine, clock: ManualClock) -> None:
    s = Signal(symbol="DOGE/USDT", direction="long", strength=0.8, timestamp=clock.now())  # type: ignore[arg-type]
    assert (await engine.check_signal(s)).reasons == ["no market data for DOGE/USDT"]


# -- through the engine: execute_signal --------------------------------------------------------


async def test_execute_long_places_entry_then_reduce_only_stop_and_take_profit(engine: Engine, clock: ManualClock) -> None:
    verdict, orders = await engine.execute_signal(
        sig(clock, stop_loss=D(50000), take_profit=D(52000)), Sizing(amount=D("0.05"))
    )
    assert verdict.confirmed
    entry, stop, tp = orders
    assert (entry.type, entry.side, entry.amount, entry.status) == (OrderType.MARKET, Side.BUY, D("0.05"), OrderStatus.FILLED)
    assert not entry.reduce_only
    assert (stop.type, stop.side, stop.amount, stop.stop_price, stop.reduce_only) == (
        OrderType.STOP, Side.SELL, D("0.05"), D(50000), True)
    assert (tp.type, tp.side, tp.amount, tp.stop_price, tp.reduce_only) == (
        OrderType.TAKE_PROFIT, Side.SELL, D("0.05"), D(52000), True)
    assert stop.status is OrderStatus.OPEN and tp.status is OrderStatus.OPEN
    assert engine.ledger.signed_size("BTC/USDT") == D("0.05")
    assert len(await events_of(engine, "signal_confirmed")) == 1


async def test_execute_short_places_buy_side_protection(engine: Engine, clock: ManualClock) -> None:
    _, orders = await engine.execute_signal(
        sig(clock, "short", stop_loss=D(52000), take_profit=D(50000)), Sizing(amount=D("0.02"))
    )
    entry, stop, tp = orders
    assert (entry.side, entry.filled) == (Side.SELL, D("0.02"))
    assert (stop.type, stop.side, stop.amount, stop.stop_price, stop.reduce_only, stop.status) == (
        OrderType.STOP, Side.BUY, D("0.02"), D(52000), True, OrderStatus.OPEN)
    assert (tp.type, tp.side, tp.amount, tp.stop_price, tp.reduce_only, tp.status) == (
        OrderType.TAKE_PROFIT, Side.BUY, D("0.02"), D(50000), True, OrderStatus.OPEN)
    assert engine.ledger.signed_size("BTC/USDT") == D("-0.02")


async def test_protective_orders_are_sized_to_the_filled_amount(engine: Engine, clock: ManualClock) -> None:
    # A limit entry at the best ask fills only what that level holds (0.25 BTC); the rest rests.
    s = sig(clock, entry=D("51000.1"), stop_loss=D(50000), take_profit=D(52000))
    _, orders = await engine.execute_signal(s, Sizing(amount=D("0.3")))
    entry, stop, tp = orders
    assert (entry.type, entry.price, entry.amount, entry.filled, entry.status) == (
        OrderType.LIMIT, D("51000.1"), D("0.3"), D("0.25"), OrderStatus.PARTIALLY_FILLED)
    assert stop.amount == tp.amount == D("0.25")
    assert stop.reduce_only and tp.reduce_only


async def test_entry_that_does_not_fill_gets_no_protective_orders(engine: Engine, clock: ManualClock) -> None:
    s = sig(clock, entry=D(50000), stop_loss=D(49000), take_profit=D(52000))
    _, orders = await engine.execute_signal(s, Sizing(amount=D("0.01")))
    [entry] = orders
    assert (entry.type, entry.status, entry.filled) == (OrderType.LIMIT, OrderStatus.OPEN, D(0))


async def test_execute_sizes_from_equity(engine: Engine, clock: ManualClock) -> None:
    # 100,000 x 0.1 x 2 / 51,000 = 0.392156.. -> floored to the 0.0001 lot
    _, [entry] = await engine.execute_signal(sig(clock), Sizing(equity_fraction=D("0.1"), leverage=D(2)))
    assert (entry.amount, entry.leverage, entry.filled) == (D("0.3921"), D(2), D("0.3921"))


async def test_execute_sizes_from_equity_at_the_signal_entry_price(engine: Engine, clock: ManualClock) -> None:
    # 100,000 x 0.05 / 50,000 = 0.1 exactly
    _, [entry] = await engine.execute_signal(sig(clock, entry=D(50000)), Sizing(equity_fraction=D("0.05")))
    assert (entry.type, entry.amount, entry.price) == (OrderType.LIMIT, D("0.1"), D(50000))


async def test_execute_close_signal_flattens_with_a_reduce_only_order(engine: Engine, clock: ManualClock) -> None:
    await engine.place_market_order("BTC/USDT", "sell", D("0.03"))
    _, [close] = await engine.execute_signal(sig(clock, "close"), Sizing(amount=D(1)))
    assert (close.side, close.amount, close.reduce_only, close.status) == (Side.BUY, D("0.03"), True, OrderStatus.FILLED)
    assert engine.ledger.signed_size("BTC/USDT") == 0


async def test_refused_signal_is_journaled_and_places_nothing(engine: Engine, clock: ManualClock) -> None:
    before = engine.venue.requests  # type: ignore[attr-defined]
    verdict, orders = await engine.execute_signal(sig(clock, strength=0.2, age=45), Sizing(amount=D("0.01")))
    assert orders == [] and not verdict.confirmed
    assert verdict.reasons == ["strength 0.20 is below the minimum 0.50", "signal is stale: 45 s old, the limit is 30 s"]
    [event] = await events_of(engine, "signal_refused")
    assert event["data"]["reasons"] == verdict.reasons
    assert event["data"]["signal"]["symbol"] == "BTC/USDT"
    assert await events_of(engine, "signal_confirmed") == []
    assert await engine.get_orders() == []
    assert engine.venue.requests == before  # type: ignore[attr-defined]


async def test_engine_uses_the_signal_filters_from_its_settings(db: Path, clock: ManualClock) -> None:
    settings = Settings(signals=SignalFilters(min_strength=0.9))
    async with Engine.paper(db=db, seed=7, clock=clock, settings=settings) as engine:
        assert (await engine.check_signal(sig(clock, strength=0.8))).reasons == ["strength 0.80 is below the minimum 0.90"]
        assert (await engine.check_signal(sig(clock, strength=0.9))).confirmed
