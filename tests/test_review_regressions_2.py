"""Defects found in the review of the order path and the halt (second round), each reproduced
as it was reported and pinned here."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from pathlib import Path

from core import Engine, ManualClock, OrderRequest, OrderStatus, TradingState
from core.errors import VenueTimeout
from core.models import Liquidity

from .conftest import on_clock, paper


def limit(price: str, amount: str = "0.02", side: str = "buy") -> OrderRequest:
    return OrderRequest(symbol="BTC/USDT", side=side, type="limit", amount=D(amount), price=D(price))  # type: ignore[arg-type]


async def test_a_fill_found_after_a_failed_cancel_is_journaled_and_survives_a_crash(db: Path, clock: ManualClock) -> None:
    engine = paper(db, clock)
    await engine.start()
    venue = engine.venue
    order = await engine.place_order(limit("50000"))
    venue._fill(venue._orders[order.client_order_id], D("0.01"), D("50000"), venue.maker_fee, Liquidity.MAKER)  # type: ignore[attr-defined]

    async def answer_lost(o):  # noqa: ANN001, ANN202 - the cancel's answer never comes
        raise VenueTimeout("cancel timed out")

    venue.cancel = answer_lost  # type: ignore[method-assign]
    after = await engine.cancel_order(order.id)  # the lookup finds it live, half filled
    assert after.status is OrderStatus.PARTIALLY_FILLED and after.filled == D("0.01")
    contents = await engine.journal.load()  # type: ignore[union-attr]
    assert [(f.order_id, f.amount) for f in contents.fills] == [(order.id, D("0.01"))]
    await engine.journal.close()  # type: ignore[union-attr]  # a crash: no clean close
    async with paper(db, clock) as again:
        assert {p.symbol: p.size for p in await again.get_positions()} == {"BTC/USDT": D("0.01")}
        assert (await again.get_order_by_id(order.id)).filled == D("0.01")


def gated_submit(engine: Engine) -> tuple[asyncio.Event, asyncio.Event]:
    """The sim's submits wait for the first event (an order stays in flight until it is set);
    the second is set when a submit has reached the venue."""
    gate, reached = asyncio.Event(), asyncio.Event()
    real_submit = engine.venue.submit

    async def submit(order):  # noqa: ANN001, ANN202
        reached.set()
        await gate.wait()
        return await real_submit(order)

    engine.venue.submit = submit  # type: ignore[method-assign]
    return gate, reached


async def test_an_order_in_flight_when_the_halt_starts_is_answered_then_cancelled_by_it(db: Path, clock: ManualClock) -> None:
    async with paper(db, clock) as engine:
        gate, reached = gated_submit(engine)
        placing = asyncio.ensure_future(engine.place_order(limit("50000")))
        await reached.wait()  # its record is written, the venue is being asked
        halting = asyncio.ensure_future(engine.halt_trading("test"))
        for _ in range(50):
            await asyncio.sleep(0)
        # a lookup now would find nothing and call the order failed, while it is about to land
        waited = not halting.done() and not placing.done()
        gate.set()
        # the halt reads the book back after a pause (the clock's) when its first read still lists the order
        placed, report = await placing, await on_clock(clock, halting, engine)
        assert waited and placed.status is not OrderStatus.FAILED, placed.error
        assert report.clean and report.accounts[0].cancelled == [placed.id], report.summary()
        assert (await engine.get_order_by_id(placed.id)).status is OrderStatus.CANCELLED
        assert engine.venue.open_order_count() == 0  # type: ignore[attr-defined]


async def test_an_order_accepted_after_the_halt_ended_is_cancelled_at_once(db: Path, clock: ManualClock) -> None:
    async with paper(db, clock) as engine:
        gate, reached = gated_submit(engine)
        placing = asyncio.ensure_future(engine.place_order(limit("50000")))
        await reached.wait()
        report = await on_clock(clock, engine.halt_trading("test"), engine)  # the submit outlives its deadline
        assert not report.clean and report.accounts[0].remaining
        gate.set()
        placed = await placing
        assert placed.status is OrderStatus.CANCELLED
        assert engine.venue.open_order_count() == 0  # type: ignore[attr-defined]
        assert engine.trading_state is TradingState.HALTED


async def test_an_order_whose_record_was_being_written_when_the_halt_came_is_never_sent(db: Path, clock: ManualClock) -> None:
    async with paper(db, clock) as engine:
        sent: list[str] = []
        real_submit = engine.venue.submit

        async def submit(order):  # noqa: ANN001, ANN202
            sent.append(order.id)
            return await real_submit(order)

        engine.venue.submit = submit  # type: ignore[method-assign]
        placing = asyncio.ensure_future(engine.place_order(limit("50000")))
        await asyncio.sleep(0)  # past the risk check, waiting on its write-ahead commit
        report = await engine.halt_trading("test")
        placed = await placing
        assert placed.status is OrderStatus.REJECTED and "HALTED" in (placed.error or "")
        assert sent == [] and report.clean


async def test_an_order_whose_placement_is_cancelled_before_it_is_sent_is_not_left_submitting(
        db: Path, clock: ManualClock) -> None:
    async with paper(db, clock) as engine:
        placing = asyncio.ensure_future(engine.place_order(limit("50000")))
        await asyncio.sleep(0)  # waiting on its write-ahead commit
        placing.cancel()
        try:
            await placing
        except asyncio.CancelledError:
            pass
        [order] = await engine.get_orders()
        assert order.status is OrderStatus.FAILED and "not sent" in (order.error or "")
        assert not await engine.get_active_orders() and engine.venue.open_order_count() == 0  # type: ignore[attr-defined]
        assert engine.account_status().free_margin == engine.account_status().equity  # no margin held for it
        await engine.journal.flush()  # type: ignore[union-attr]
        disk = {o.id: o.status for o in (await engine.journal.load()).orders}  # type: ignore[union-attr]
        assert disk == {order.id: OrderStatus.FAILED}


async def test_a_halt_during_start_up_acts_on_the_restored_book_and_stays_halted(db: Path, clock: ManualClock) -> None:
    async with paper(db, clock) as engine:
        first = await engine.place_order(limit("50000"))
    engine = paper(db, clock)
    starting = asyncio.ensure_future(engine.start())
    while engine.journal is None:  # the journal is open, the restore under way
        await asyncio.sleep(0)
    report = await engine.halt_trading("ctrl+k during start-up")
    await starting
    try:
        assert report.clean and report.accounts[0].cancelled == [first.id], report.summary()
        assert engine.trading_state is TradingState.HALTED
        refused = await engine.place_order(limit("50000"))
        assert refused.status is OrderStatus.REJECTED and engine.venue.open_order_count() == 0  # type: ignore[attr-defined]
    finally:
        await engine.close()


async def test_a_resume_asked_for_during_a_halt_waits_for_it(db: Path, clock: ManualClock) -> None:
    async with paper(db, clock) as engine:
        await engine.place_order(limit("50000"))
        gate = asyncio.Event()
        real_cancel_all = engine.venue.cancel_all

        async def slow_cancel_all(symbol=None):  # noqa: ANN001, ANN202
            await gate.wait()
            return await real_cancel_all(symbol)

        engine.venue.cancel_all = slow_cancel_all  # type: ignore[method-assign]
        halting = asyncio.ensure_future(engine.halt_trading("test"))
        for _ in range(20):
            await asyncio.sleep(0)
        resuming = asyncio.ensure_future(engine.resume_trading("confirmed too early"))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not resuming.done() and engine.trading_state is TradingState.HALTED  # not mid-halt
        gate.set()
        report = await halting
        await resuming
        assert report.clean and engine.venue.open_order_count() == 0  # type: ignore[attr-defined]
        assert engine.trading_state is TradingState.ACTIVE


def test_a_halt_with_a_failed_cancel_is_never_called_clean() -> None:
    from datetime import UTC, datetime

    from core.halt import AccountHaltReport, HaltReport

    at = datetime(2026, 1, 5, tzinfo=UTC)
    account = AccountHaltReport(account="a", venue="v", verified=True, failed={"td1": "refused"})
    report = HaltReport(reason="t", flatten=False, started_at=at, finished_at=at, seconds=0.0, accounts=[account])
    assert not report.clean and "ATTENTION: halt incomplete" in report.summary()


async def test_an_order_the_venue_still_lists_after_saying_cancelled_is_cancelled_again(
        db: Path, clock: ManualClock) -> None:
    async with paper(db, clock) as engine:
        venue = engine.venue
        order = await engine.place_order(limit("50000"))
        real_cancel_all = venue.cancel_all
        calls: list[str] = []

        async def says_cancelled_first(symbol=None):  # noqa: ANN001, ANN202 - "cancelled", not yet applied
            calls.append("cancel_all")
            if len(calls) == 1:
                reports = [so.report() for so in venue._resting[symbol].values()]  # type: ignore[attr-defined]
                for r in reports:
                    r.status = OrderStatus.CANCELLED
                return reports
            return await real_cancel_all(symbol)

        venue.cancel_all = says_cancelled_first  # type: ignore[method-assign]
        report = await on_clock(clock, engine.halt_trading("test"), engine)
        assert report.clean and report.accounts[0].cancelled == [order.id], report.summary()
        assert venue.open_order_count() == 0 and len(calls) == 2  # type: ignore[attr-defined]


async def test_the_engine_tells_its_venues_when_trading_is_halted(db: Path, clock: ManualClock) -> None:
    async with paper(db, clock) as engine:
        assert engine.venue.halted is False
        await engine.halt_trading("test")
        assert engine.venue.halted is True
        await engine.resume_trading("back")
        assert engine.venue.halted is False
