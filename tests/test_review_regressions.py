"""Defects found in review, each reproduced as it was reported and pinned here."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from pathlib import Path

import pytest

from core import Engine, EngineError, ManualClock, OrderRequest, OrderStatus, TradingState
from core.errors import OrderRejected, VenueTimeout
from core.models import Liquidity
from core.venues.base import VenueFill, VenueReport

from .conftest import on_clock, paper


def limit(symbol: str, price: str, amount: str, side: str = "buy", **kw: object) -> OrderRequest:
    return OrderRequest(symbol=symbol, side=side, type="limit", amount=D(amount), price=D(price), **kw)  # type: ignore[arg-type]


async def test_a_halt_cut_by_its_deadline_keeps_what_the_venue_already_answered(db: Path, clock: ManualClock) -> None:
    async with paper(db, clock) as engine:
        x = await engine.place_order(limit("BTC/USDT", "50990", "0.01"))
        y = await engine.place_order(limit("BTC/USDT", "50990", "1", leverage=D(5)))
        engine.venue.market.script("BTC/USDT", ["50989.5"])  # type: ignore[attr-defined]
        await engine.venue.poll()  # the venue fills X and part of Y; the engine has not polled yet

        async def hang(order):  # noqa: ANN001, ANN202 - lookups stop answering
            await asyncio.Event().wait()

        engine.venue.fetch_order = hang  # type: ignore[method-assign]
        report = await on_clock(clock, engine.halt_trading("deadline"), engine)
        assert not report.clean
        await engine.journal.flush()  # type: ignore[union-attr]
        disk = {o.id: o for o in (await engine.journal.load()).orders}  # type: ignore[union-attr]
        mem = {o.id: o for o in await engine.get_orders()}
        assert disk[y.id].status is mem[y.id].status is OrderStatus.CANCELLED
        assert disk[y.id].filled == mem[y.id].filled == D("0.24")
        assert len((await engine.journal.load()).fills) == len(engine._fill_ids)  # type: ignore[union-attr]
        assert x.id in report.accounts[0].remaining
    async with paper(db, clock) as engine:
        assert [o.id for o in await engine.get_active_orders()] == [x.id]  # Y stays cancelled
        assert engine.ledger.signed_size("BTC/USDT") == D("0.24")


async def test_a_cancel_that_fails_then_succeeds_does_not_crash_the_halt_report(engine: Engine, clock: ManualClock) -> None:
    await engine.place_order(limit("BTC/USDT", "50000", "0.01"))
    real = engine.venue.cancel_all
    calls = [0]

    async def cancel_all(symbol=None):  # noqa: ANN001, ANN202
        calls[0] += 1
        if calls[0] == 1:
            raise OrderRejected("exchange busy (a code that is not retried)")
        return await real(symbol)

    engine.venue.cancel_all = cancel_all  # type: ignore[method-assign]
    report = await on_clock(clock, engine.halt_trading("test"), engine)
    assert report.clean and report.accounts[0].failed == {}
    assert engine.last_halt is report


async def test_emergency_close_closes_a_position_above_the_order_size_limit(engine: Engine, clock: ManualClock) -> None:
    for _ in range(2):  # 9 BTC ~ 459,000 > max_order_notional 250,000
        await engine.place_order(OrderRequest(symbol="BTC/USDT", side="buy", type="market", amount=D("4.5"), leverage=D(5)))
    assert engine.ledger.signed_size("BTC/USDT") == D(9)
    report = await on_clock(clock, engine.emergency_close_all("panic"), engine)
    assert report.clean, report.summary()
    assert await engine.venue.fetch_positions() == {}


async def test_resume_rearms_the_breakers_instead_of_halting_again(engine: Engine, clock: ManualClock) -> None:
    await engine.place_order(OrderRequest(symbol="ETH/USDT", side="buy", type="market", amount=D("1")))  # marks run breakers
    engine.venue.dials.reject_rate = 1.0  # type: ignore[attr-defined]
    while engine.trading_state is not TradingState.HALTED:
        await on_clock(clock, engine.place_order(limit("BTC/USDT", "50000", "0.01")), engine)
    engine.venue.dials.reject_rate = 0.0  # type: ignore[attr-defined]
    await engine.resume_trading("venue fixed")
    order = await engine.place_order(limit("BTC/USDT", "50000", "0.01"))
    await on_clock(clock, engine.tick(), engine)
    assert engine.trading_state is TradingState.ACTIVE
    assert (await engine.get_order_by_id(order.id)).status is OrderStatus.OPEN  # type: ignore[union-attr]


async def test_cancel_timeout_after_a_fill_reports_the_fill_not_a_crash(engine: Engine) -> None:
    order = await engine.place_order(limit("BTC/USDT", "50990", "0.01"))

    async def cancel(o):  # noqa: ANN001, ANN202 - the order fills while the cancel is on the wire
        engine.venue.market.script("BTC/USDT", ["50985"])  # type: ignore[attr-defined]
        await engine.tick()
        raise VenueTimeout("cancel timed out")

    engine.venue.cancel = cancel  # type: ignore[method-assign]
    result = await engine.cancel_order(order.id)
    assert result.status is OrderStatus.FILLED


async def test_cancel_whose_answer_is_lost_is_settled_by_lookup(engine: Engine) -> None:
    order = await engine.place_order(limit("BTC/USDT", "50000", "0.01"))
    real = engine.venue.cancel

    async def cancel(o):  # noqa: ANN001, ANN202 - the venue cancels, the answer is lost
        await real(o)
        raise VenueTimeout("read timeout")

    engine.venue.cancel = cancel  # type: ignore[method-assign]
    result = await engine.cancel_order(order.id)
    assert result.status is OrderStatus.CANCELLED
    assert await engine.get_active_orders() == []
    assert engine.account_status().free_margin == engine.account_status().equity  # nothing held


async def test_modify_passes_the_risk_checks_of_a_new_order(engine: Engine) -> None:
    order = await engine.place_order(limit("BTC/USDT", "50000", "0.01"))
    with pytest.raises(EngineError, match="insufficient free margin"):
        await engine.modify_order(order.id, amount=D("40"))
    await engine.modify_order(order.id, price=D("50100"))  # a harmless change still goes through
    await engine.set_reducing("desk limit")
    with pytest.raises(EngineError, match="REDUCING"):
        await engine.modify_order(order.id, price=D("51500"))


async def test_reducing_counts_open_orders_so_resting_sells_cannot_flip_a_long(engine: Engine, clock: ManualClock) -> None:
    await engine.place_order(OrderRequest(symbol="ETH/USDT", side="buy", type="market", amount=D("1")))
    await engine.set_reducing("desk limit reached")
    first = await engine.place_order(limit("ETH/USDT", "3210", "1", side="sell"))
    second = await engine.place_order(limit("ETH/USDT", "3210", "1", side="sell"))
    assert first.status is OrderStatus.OPEN
    assert second.status is OrderStatus.REJECTED and "REDUCING" in (second.error or "")


async def test_a_zero_amount_fill_from_a_venue_is_refused_not_booked(engine: Engine) -> None:
    order = await engine.place_order(limit("BTC/USDT", "50000", "0.01"))
    bad = VenueReport(client_order_id=order.client_order_id, status=OrderStatus.OPEN,
                      fills=[VenueFill("t1", D(0), D("50000"), D(0), "USDT", Liquidity.MAKER, engine.clock.now())])
    real = engine.venue.poll

    async def poll():  # noqa: ANN202
        updates = await real()
        updates.reports.append(bad)
        return updates

    engine.venue.poll = poll  # type: ignore[method-assign]
    await engine.tick()
    assert ("paper", "t1") not in engine._fill_ids
    assert (await engine.get_order_by_id(order.id)).filled == 0  # type: ignore[union-attr]


def test_engine_is_importable_without_the_ui() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import core, sys; print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'widgets', 'console')))"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


_ = Engine  # keep the import for type hints above


async def test_a_cancel_answered_not_found_whose_lookup_fails_leaves_the_order_live_not_cancelling(
    engine: Engine, clock: ManualClock
) -> None:
    from core.errors import OrderNotFound

    order = await engine.place_order(limit("BTC/USDT", "50000", "0.01"))

    async def not_found(o):  # noqa: ANN001, ANN202
        raise OrderNotFound("unknown order (the exchange lost track of it for a moment)")

    async def lookup_down(o):  # noqa: ANN001, ANN202
        raise VenueTimeout("lookup timed out")

    engine.venue.cancel = not_found  # type: ignore[method-assign]
    engine.venue.fetch_order = lookup_down  # type: ignore[method-assign]
    after = await engine.cancel_order(order.id)  # no VenueError escapes the cancel
    assert after.status is OrderStatus.OPEN  # not stuck in CANCELLING: the tracker settles it later
    assert "lookup failed: lookup timed out" in (after.error or "")
    kinds = [e["kind"] for e in await engine.journal.events(order_id=order.id)]  # type: ignore[union-attr]
    assert kinds[-2:] == ["cancel_requested", "cancel_failed"]
