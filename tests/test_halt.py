"""The halt: latched first, cancels everything on every account, retries transient errors until
the deadline, proves the book is empty, reports what it could not do."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal as D
from pathlib import Path

import pytest

from core import Engine, ManualClock, OrderRequest, OrderStatus, TradingState
from core.config import HaltSettings
from core.errors import VenueUnavailable
from core.halt import retry_until
from core.venues.sim import SimVenue
from core.venues.sim_market import SimMarket

from .conftest import on_clock, paper


def limit(symbol: str, price: str, amount: str, side: str = "buy") -> OrderRequest:
    return OrderRequest(symbol=symbol, side=side, type="limit", amount=D(amount), price=D(price))  # type: ignore[arg-type]


async def spread_orders(engine: Engine, per_symbol: int = 4) -> list[str]:
    ids = []
    for i in range(per_symbol):
        for sym, px, amt in (("BTC/USDT", 50000, "0.01"), ("ETH/USDT", 3100, "0.1"), ("SOL/USDT", 148, "1")):
            o = await engine.place_order(limit(sym, str(D(px) - D(i) / 10), amt))
            assert o.status is OrderStatus.OPEN, o.error
            ids.append(o.id)
    return ids


def flaky(venue: SimVenue, rate: float, seed: int = 3) -> list[int]:
    """Make the venue's cancels fail transiently at ``rate`` (seeded); returns the fail count."""
    dice = random.Random(seed)
    failures = [0]
    real_cancel, real_cancel_all = venue.cancel, venue.cancel_all

    async def cancel(order):  # noqa: ANN001, ANN202
        if dice.random() < rate:
            failures[0] += 1
            raise VenueUnavailable("503 service unavailable (simulated)")
        return await real_cancel(order)

    async def cancel_all(symbol=None):  # noqa: ANN001, ANN202
        if dice.random() < rate:
            failures[0] += 1
            raise VenueUnavailable("429 too many requests (simulated)")
        return await real_cancel_all(symbol)

    venue.cancel, venue.cancel_all = cancel, cancel_all  # type: ignore[method-assign]
    return failures


async def test_halt_cancels_every_order_on_every_symbol_and_proves_it(engine: Engine, clock: ManualClock) -> None:
    ids = await spread_orders(engine)
    report = await on_clock(clock, engine.halt_trading("test halt"), engine)
    assert engine.trading_state is TradingState.HALTED
    assert report.clean, report.summary()
    [acct] = report.accounts
    assert sorted(acct.cancelled) == sorted(ids) and acct.verified and not acct.remaining
    assert await engine.get_active_orders() == []
    assert await engine.venue.fetch_open_orders() == []
    assert "book empty, verified" in report.summary()
    kinds = [e["kind"] for e in await engine.journal.events()]  # type: ignore[union-attr]
    assert kinds.index("halted") < kinds.index("cancel_requested") < kinds.index("halt_report")


async def test_halted_is_persisted_before_any_cancel_is_sent(engine: Engine, clock: ManualClock) -> None:
    await spread_orders(engine, 1)
    seen: list[str] = []
    real = engine.venue.cancel_all

    async def spy(symbol=None):  # noqa: ANN001, ANN202
        seen.extend(k for k in engine.journal.recent_kinds if k == "halted")  # type: ignore[union-attr]
        return await real(symbol)

    engine.venue.cancel_all = spy  # type: ignore[method-assign]
    await on_clock(clock, engine.halt_trading("latched first"), engine)
    assert seen == ["halted"] * 3  # committed before each of the three per-symbol cancel-alls


async def test_halt_with_30_percent_transient_cancel_failures_still_empties_the_book(engine: Engine, clock: ManualClock) -> None:
    await spread_orders(engine, 10)
    failures = flaky(engine.venue, 0.3)  # type: ignore[arg-type]
    report = await on_clock(clock, engine.halt_trading("flaky venue"), engine)
    assert failures[0] > 0  # the failures really happened and were retried
    assert report.clean, report.summary()
    assert await engine.venue.fetch_open_orders() == []


async def test_per_order_cancel_path_with_transient_failures(engine: Engine, clock: ManualClock) -> None:
    engine.venue.has_cancel_all = False  # type: ignore[misc]
    await spread_orders(engine, 10)
    failures = flaky(engine.venue, 0.3, seed=11)  # type: ignore[arg-type]
    report = await on_clock(clock, engine.halt_trading("no cancel-all"), engine)
    assert failures[0] > 0
    assert report.clean, report.summary()
    assert len(report.accounts[0].cancelled) == 30
    assert await engine.venue.fetch_open_orders() == []


async def test_a_venue_that_never_answers_is_reported_by_the_deadline(engine: Engine, clock: ManualClock) -> None:
    ids = await spread_orders(engine, 2)

    async def hang(*_a, **_k):  # noqa: ANN002, ANN003, ANN202
        await asyncio.Event().wait()

    engine.venue.cancel_all = hang  # type: ignore[method-assign]
    t0 = clock.monotonic()
    report = await on_clock(clock, engine.halt_trading("venue down"), engine)
    assert clock.monotonic() - t0 == engine.settings.halt.deadline_seconds
    [acct] = report.accounts
    assert not report.clean and "did not answer" in (acct.error or "")
    assert sorted(acct.remaining) == sorted(ids)  # named, one by one
    assert "ATTENTION" in report.summary()
    assert engine.trading_state is TradingState.HALTED


async def test_one_dead_venue_does_not_stop_the_other_account(db: Path, clock: ManualClock) -> None:
    engine = paper(db, clock)
    second = SimVenue(SimMarket(9), clock=clock, account="second", balance=D(100_000), seed=9)
    engine._add_account(second, D(100_000))
    async with engine:
        await spread_orders(engine, 1)
        other = await engine.place_order(OrderRequest(symbol="BTC/USDT", side="buy", type="limit",
                                                      amount=D("0.01"), price=D("50000"), account="second"))
        assert other.status is OrderStatus.OPEN

        async def hang(*_a, **_k):  # noqa: ANN002, ANN003, ANN202
            await asyncio.Event().wait()

        engine.venue.cancel_all = hang  # type: ignore[method-assign]
        report = await on_clock(clock, engine.halt_trading("one venue down"), engine)
        by_name = {a.account: a for a in report.accounts}
        assert by_name["second"].clean and by_name["second"].cancelled == [other.id]
        assert not by_name["paper"].clean and len(by_name["paper"].remaining) == 3


async def test_halt_is_idempotent(engine: Engine, clock: ManualClock) -> None:
    await spread_orders(engine, 1)
    first = await on_clock(clock, engine.halt_trading("first"), engine)
    second = await on_clock(clock, engine.halt_trading("second"), engine)
    assert len(first.accounts[0].cancelled) == 3
    assert second.clean and second.accounts[0].cancelled == []
    assert engine.trading_state is TradingState.HALTED


async def test_flatten_closes_every_position_and_verifies(engine: Engine, clock: ManualClock) -> None:
    await engine.place_market_order("BTC/USDT", "buy", D("0.3"))
    await engine.place_market_order("ETH/USDT", "sell", D("2"))
    await spread_orders(engine, 1)
    report = await on_clock(clock, engine.emergency_close_all("flatten test"), engine)
    assert report.clean, report.summary()
    assert sorted(report.accounts[0].positions_closed) == ["BTC/USDT", "ETH/USDT"]
    assert report.accounts[0].positions_left == []
    assert await engine.get_positions() == []
    assert await engine.venue.fetch_positions() == {}
    closes = [o for o in await engine.get_orders() if o.tag == "halt flatten"]
    assert len(closes) == 2 and all(o.reduce_only and o.type.value == "market" for o in closes)


async def test_halt_stops_algorithms_first(engine: Engine, clock: ManualClock) -> None:
    calls: list[str] = []

    class Algo:
        name = "twap-1"

        async def stop(self, reason: str) -> None:
            calls.append(reason)

    engine.register_algorithm(Algo())
    await on_clock(clock, engine.halt_trading("stop algos"), engine)
    assert calls == ["halt: stop algos"]


async def test_halted_survives_restart_and_only_resume_lifts_it(db: Path, clock: ManualClock) -> None:
    async with paper(db, clock) as engine:
        await on_clock(clock, engine.halt_trading("end of day"), engine)
    async with paper(db, clock) as engine:
        assert engine.trading_state is TradingState.HALTED
        assert engine.trading_state_reason == "end of day"
        refused = await engine.place_order(limit("BTC/USDT", "50000", "0.01"))
        assert refused.status is OrderStatus.REJECTED and "HALTED" in (refused.error or "")
        try:
            await engine.resume_trading("  ")
            raise AssertionError("resume without a reason must fail")
        except Exception as exc:  # noqa: BLE001
            assert "reason" in str(exc)
        await engine.resume_trading("checked the book")
        ok = await engine.place_order(limit("BTC/USDT", "50000", "0.01"))
        assert ok.status is OrderStatus.OPEN
        kinds = [e["kind"] for e in await engine.journal.events()]  # type: ignore[union-attr]
        assert "resumed" in kinds
    async with paper(db, clock) as engine:
        assert engine.trading_state is TradingState.ACTIVE


async def test_cancel_all_orders_uses_one_request_per_symbol(engine: Engine) -> None:
    await spread_orders(engine, 5)
    before = engine.venue.requests  # type: ignore[attr-defined]
    done = await engine.cancel_all_orders()
    assert len(done) == 15 and all(o.status is OrderStatus.CANCELLED for o in done)
    assert engine.venue.requests - before == 3  # type: ignore[attr-defined]
    assert engine.trading_state is TradingState.ACTIVE  # cancel-all is not a halt


# -- a rate limit's Retry-After: sending again sooner gets the IP banned ---------------------------


async def test_the_halts_retries_wait_out_a_rate_limits_retry_after(clock: ManualClock) -> None:
    settings = HaltSettings(retry_initial_seconds=0.01, retry_max_seconds=0.05)
    calls: list[float] = []

    async def cancel_all() -> str:
        calls.append(clock.monotonic())
        if len(calls) == 1:
            raise VenueUnavailable("binance rate-limited the cancel-all", retry_after=2.0)
        return "cancelled"

    result = await on_clock(clock, retry_until(clock, clock.monotonic() + 5.0, settings, cancel_all))
    assert result == "cancelled"
    assert calls[1] - calls[0] >= 2.0  # not the 0.01 s backoff


async def test_a_retry_after_past_the_halts_deadline_is_not_hammered(clock: ManualClock) -> None:
    settings = HaltSettings(retry_initial_seconds=0.01, retry_max_seconds=0.05)
    calls: list[float] = []

    async def cancel_all() -> str:
        calls.append(clock.monotonic())
        raise VenueUnavailable("binance rate-limited the cancel-all", retry_after=30.0)

    start = clock.monotonic()
    with pytest.raises(VenueUnavailable, match="rate-limited"):
        await on_clock(clock, retry_until(clock, start + 5.0, settings, cancel_all))
    assert calls == [start]  # one request, then the report says what was left
