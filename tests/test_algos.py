"""Execution algorithms: TWAP, iceberg and limit-then-market as journaled parent orders whose
children go through the engine. Time is a ManualClock: slices fall exactly when it says."""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal as D
from pathlib import Path

import pytest

from core import Engine, EngineError, ManualClock, OrderStatus, OrderType, Settings
from core.algos import AlgoStatus, AlgoUpdated
from core.config import AlgoSettings, RiskLimits
from core.errors import OrderNotFound, VenueUnavailable
from core.events import Notice
from core.models import Order, TimeInForce
from core.venues.sim import SimDials

from .conftest import on_clock, paper

BTC = "BTC/USDT"


async def settle(engine: Engine) -> None:
    """Run every task until nothing moves without the clock: the journal stays idle for a while."""
    quiet = 0
    for _ in range(20_000):
        await asyncio.sleep(0)
        assert engine.journal is not None
        if engine.journal.idle:
            quiet += 1
            if quiet >= 200:
                return
        else:
            quiet = 0
            await engine.journal.flush()
    raise AssertionError("settle: tasks kept working")


async def advance(clock: ManualClock, engine: Engine, seconds: float) -> None:
    clock.advance(seconds)
    await settle(engine)


async def children(engine: Engine, algo_id: str) -> list[Order]:
    return await engine.algos.children(algo_id)


def at(order: Order, start: datetime) -> float:
    """Seconds from ``start`` to when the child was placed."""
    return (order.created_at - start).total_seconds()


async def cross(engine: Engine, order: Order) -> None:
    """Move the market one tick through a resting buy limit, so it fills on the next poll."""
    assert order.price is not None
    engine.venue.market.script(BTC, [order.price - D("0.1")])  # type: ignore[attr-defined]
    await engine.tick()
    await settle(engine)


async def test_twap_slices_at_exact_times_with_lot_rounding_and_the_last_takes_the_rest(
    engine: Engine, clock: ManualClock
) -> None:
    stream = engine.events()
    start = clock.now()
    parent = await engine.algos.start_twap(BTC, "buy", D("1.0001"), duration=60, slices=3)
    await settle(engine)
    assert [c.amount for c in await children(engine, parent.id)] == [D("0.3333")]  # 1.0001 / 3 floored to the lot
    await advance(clock, engine, 19.9)
    assert len(await children(engine, parent.id)) == 1  # not a moment early
    await advance(clock, engine, 0.1)
    await advance(clock, engine, 20)
    kids = await children(engine, parent.id)
    # 0.6668 / 2 = 0.3334; the last slice takes what is left (0.3334)
    assert [(at(c, start), c.amount, c.type) for c in kids] == [
        (0.0, D("0.3333"), OrderType.MARKET), (20.0, D("0.3334"), OrderType.MARKET), (40.0, D("0.3334"), OrderType.MARKET)]
    assert all(c.tag == f"algo:{parent.id}" and c.status is OrderStatus.FILLED for c in kids)
    done = engine.algos.get(parent.id)
    assert done is not None and done.status is AlgoStatus.COMPLETED and done.filled == D("1.0001")
    cost = sum(c.filled * c.average_price for c in kids if c.average_price)
    assert done.average_price == (cost / done.filled).quantize(D("1e-10")).normalize()
    [pos] = await engine.get_positions()
    assert pos.size == D("1.0001")
    kinds = [e.kind for e in stream.drain() if isinstance(e, AlgoUpdated)]
    assert kinds[0] == "algo_started" and kinds[-1] == "algo_completed" and kinds.count("algo_child") >= 3
    state = (await engine.journal.load()).state  # type: ignore[union-attr]
    assert '"status":"completed"' in state[f"algo:{parent.id}"]


async def test_twap_skips_a_slice_beyond_its_price_limit_and_retries_it_next(engine: Engine, clock: ManualClock) -> None:
    start = clock.now()
    parent = await engine.algos.start_twap(BTC, "buy", "0.9", duration=30, slices=3, price_limit="51500")
    await settle(engine)
    engine.venue.market.script(BTC, ["52000"])  # type: ignore[attr-defined]
    await engine.tick()
    await advance(clock, engine, 10)  # best ask 52000.1 > 51500: skipped
    assert len(await children(engine, parent.id)) == 1
    engine.venue.market.script(BTC, ["51000"])  # type: ignore[attr-defined]
    await engine.tick()
    await advance(clock, engine, 10)
    kids = await children(engine, parent.id)
    assert [(at(c, start), c.amount) for c in kids] == [(0.0, D("0.3")), (20.0, D("0.6"))]
    done = engine.algos.get(parent.id)
    assert done is not None and done.status is AlgoStatus.COMPLETED and done.filled == D("0.9")
    skipped = [e for e in await engine.journal.events() if e["kind"] == "algo_skipped"]  # type: ignore[union-attr]
    assert len(skipped) == 1 and "52000.1 is beyond the price limit 51500" in skipped[0]["data"]["reason"]


async def test_twap_limit_children_rest_at_the_bid_and_leftovers_are_cancelled_at_the_next_slice(
    engine: Engine, clock: ManualClock
) -> None:
    parent = await engine.algos.start_twap(BTC, "buy", "0.3", duration=30, slices=3, child_type="limit")
    await settle(engine)
    [first] = await children(engine, parent.id)
    bid, _ = engine.venue.market.best(BTC)  # type: ignore[attr-defined]
    assert (first.type, first.price, first.amount, first.status) == (OrderType.LIMIT, bid, D("0.1"), OrderStatus.OPEN)
    await cross(engine, first)  # the first slice fills
    await advance(clock, engine, 10)
    second = (await children(engine, parent.id))[1]
    assert second.amount == D("0.1") and second.status is OrderStatus.OPEN  # (0.3 - 0.1) / 2
    await advance(clock, engine, 10)  # second slice left unfilled: cancelled, rolled into the last
    kids = await children(engine, parent.id)
    assert kids[1].status is OrderStatus.CANCELLED and kids[1].filled == 0
    assert kids[2].amount == D("0.2") and kids[2].status is OrderStatus.OPEN
    await cross(engine, kids[2])
    done = engine.algos.get(parent.id)
    assert done is not None and done.status is AlgoStatus.COMPLETED and done.filled == D("0.3")
    assert await engine.get_active_orders() == []


async def test_twap_limit_children_unfilled_at_the_end_are_cancelled_and_the_shortfall_named(
    engine: Engine, clock: ManualClock
) -> None:
    parent = await engine.algos.start_twap(BTC, "buy", "0.2", duration=20, slices=2, child_type="limit")
    await settle(engine)
    await advance(clock, engine, 10)
    assert len(await engine.get_active_orders()) == 1
    await advance(clock, engine, 9.9)
    assert engine.algos.get(parent.id).status is AlgoStatus.RUNNING  # type: ignore[union-attr]
    await advance(clock, engine, 0.1)
    done = engine.algos.get(parent.id)
    assert done is not None and done.status is AlgoStatus.COMPLETED and done.filled == 0
    assert done.reason == "duration over with 0.2 unfilled"
    assert await engine.get_active_orders() == []


async def test_iceberg_shows_one_visible_child_and_refills_until_done(engine: Engine, clock: ManualClock) -> None:
    parent = await engine.algos.start_iceberg(BTC, "buy", "1", visible="0.25", price="50990")
    await settle(engine)
    for _ in range(4):
        live = await engine.get_active_orders()
        assert len(live) == 1 and live[0].amount == D("0.25") and live[0].price == D("50990")
        await cross(engine, live[0])
    kids = await children(engine, parent.id)
    assert len(kids) == 4 and all(c.status is OrderStatus.FILLED for c in kids)
    done = engine.algos.get(parent.id)
    assert done is not None and done.status is AlgoStatus.COMPLETED and done.filled == D("1")
    assert done.average_price == D("50990")
    assert await engine.get_active_orders() == []


async def test_iceberg_refresh_replaces_a_visible_child_that_did_not_fill(engine: Engine, clock: ManualClock) -> None:
    parent = await engine.algos.start_iceberg(BTC, "sell", "0.5", visible="0.25", price="51010", refresh=5)
    await settle(engine)
    await advance(clock, engine, 4.9)
    assert len(await children(engine, parent.id)) == 1
    await advance(clock, engine, 0.1)
    old, new = await children(engine, parent.id)
    assert old.status is OrderStatus.CANCELLED and new.status is OrderStatus.OPEN and new.amount == D("0.25")
    assert engine.algos.get(parent.id).status is AlgoStatus.RUNNING  # type: ignore[union-attr]


async def test_limit_then_market_takes_the_rest_at_market_at_the_timeout(engine: Engine, clock: ManualClock) -> None:
    start = clock.now()
    parent = await engine.algos.start_limit_then_market(BTC, "buy", "0.4", price="50990", timeout=30)
    await settle(engine)
    [limit] = await children(engine, parent.id)
    await cross(engine, limit)  # the best level holds 0.25: a partial fill
    assert engine.algos.get(parent.id).filled == D("0.25")  # type: ignore[union-attr]
    await advance(clock, engine, 29.9)
    assert len(await children(engine, parent.id)) == 1
    await advance(clock, engine, 0.1)
    limit, market = await children(engine, parent.id)
    assert limit.status is OrderStatus.CANCELLED and limit.filled == D("0.25")
    assert (market.type, market.amount, market.status, at(market, start)) == (
        OrderType.MARKET, D("0.15"), OrderStatus.FILLED, 30.0)
    done = engine.algos.get(parent.id)
    assert done is not None and done.status is AlgoStatus.COMPLETED and done.filled == D("0.4")


async def test_limit_then_market_that_fills_as_a_limit_never_goes_to_market(engine: Engine, clock: ManualClock) -> None:
    parent = await engine.algos.start_limit_then_market(BTC, "buy", "0.2", price="50990", timeout=30)
    await settle(engine)
    [limit] = await children(engine, parent.id)
    await cross(engine, limit)
    assert engine.algos.get(parent.id).status is AlgoStatus.COMPLETED  # type: ignore[union-attr]
    await advance(clock, engine, 60)
    assert len(await children(engine, parent.id)) == 1


async def test_children_cancelled_by_hand_again_and_again_fail_the_iceberg(engine: Engine, clock: ManualClock) -> None:
    parent = await engine.algos.start_iceberg(BTC, "buy", "1", visible="0.25", price="50990")
    await settle(engine)
    for _ in range(3):  # someone keeps cancelling the visible child from the orders pane
        [child] = await engine.get_active_orders()
        await engine.cancel_order(child.id)
        await settle(engine)
    failed = engine.algos.get(parent.id)
    assert failed is not None and failed.status is AlgoStatus.FAILED
    assert "3 children in a row ended unfilled outside the algorithm" in (failed.reason or "")
    assert len(await children(engine, parent.id)) == 3 and await engine.get_active_orders() == []


async def test_pause_places_no_child_and_resume_carries_on(engine: Engine, clock: ManualClock) -> None:
    start = clock.now()
    parent = await engine.algos.start_twap(BTC, "buy", "1", duration=60, slices=4)
    await settle(engine)
    await advance(clock, engine, 5)
    paused = await engine.algos.pause(parent.id)
    assert paused.status is AlgoStatus.PAUSED
    for _ in range(3):  # slices due at 15, 30 and 45 pass while paused
        await advance(clock, engine, 15)
    assert len(await children(engine, parent.id)) == 1
    with pytest.raises(EngineError, match="only a running one can be paused"):
        await engine.algos.pause(parent.id)
    await engine.algos.resume(parent.id)  # at t=50: the overdue slice goes at once, the rest one interval apart
    await settle(engine)
    await advance(clock, engine, 15)
    await advance(clock, engine, 15)
    kids = await children(engine, parent.id)
    assert [(at(c, start), c.amount) for c in kids] == [(0.0, D("0.25")), (50.0, D("0.25")), (65.0, D("0.25")),
                                                                (80.0, D("0.25"))]
    assert engine.algos.get(parent.id).status is AlgoStatus.COMPLETED  # type: ignore[union-attr]


async def test_pause_cancels_the_open_child_and_resume_places_it_again(engine: Engine, clock: ManualClock) -> None:
    parent = await engine.algos.start_iceberg(BTC, "buy", "0.5", visible="0.25", price="50990")
    await settle(engine)
    [first] = await children(engine, parent.id)
    await engine.algos.pause(parent.id)
    assert (await engine.get_order_by_id(first.id)).status is OrderStatus.CANCELLED  # type: ignore[union-attr]
    engine.venue.market.script(BTC, ["50989.9"])  # type: ignore[attr-defined]
    await engine.tick()
    await advance(clock, engine, 60)
    assert len(await children(engine, parent.id)) == 1 and await engine.get_active_orders() == []
    await engine.algos.resume(parent.id)
    await settle(engine)
    live = await engine.get_active_orders()
    assert len(live) == 1 and live[0].tag == f"algo:{parent.id}" and live[0].amount == D("0.25")


async def test_cancel_cancels_the_open_children_and_nothing_follows(engine: Engine, clock: ManualClock) -> None:
    parent = await engine.algos.start_iceberg(BTC, "buy", "1", visible="0.25", price="50990")
    await settle(engine)
    [child] = await children(engine, parent.id)
    cancelled = await engine.algos.cancel(parent.id)
    assert cancelled.status is AlgoStatus.CANCELLED and cancelled.reason == "cancelled by the trader"
    assert (await engine.get_order_by_id(child.id)).status is OrderStatus.CANCELLED  # type: ignore[union-attr]
    engine.venue.market.script(BTC, ["50989.9"])  # type: ignore[attr-defined]
    await engine.tick()
    await advance(clock, engine, 60)
    assert len(await children(engine, parent.id)) == 1
    assert await engine.venue.fetch_open_orders() == []
    with pytest.raises(EngineError, match="already cancelled"):
        await engine.algos.cancel(parent.id)


async def test_halt_during_a_twap_stops_it_first_and_leaves_the_book_empty(engine: Engine, clock: ManualClock) -> None:
    parent = await engine.algos.start_twap(BTC, "buy", "1", duration=60, slices=4, child_type="limit")
    await settle(engine)
    assert len(await engine.get_active_orders()) == 1
    report = await on_clock(clock, engine.halt_trading("test halt"), engine)
    await settle(engine)
    assert report.clean, report.summary()
    stopped = engine.algos.get(parent.id)
    assert stopped is not None and stopped.status is AlgoStatus.STOPPED and stopped.reason == "halt: test halt"
    assert await engine.get_active_orders() == [] and await engine.venue.fetch_open_orders() == []
    for _ in range(5):
        await advance(clock, engine, 15)
    assert len(await children(engine, parent.id)) == 1  # no child after the halt
    kinds = [e["kind"] for e in await engine.journal.events()]  # type: ignore[union-attr]
    assert kinds.index("halted") < kinds.index("algo_stopped") < kinds.index("cancel_requested")
    with pytest.raises(EngineError, match="HALTED"):
        await engine.algos.start_twap(BTC, "buy", "1", duration=60, slices=4)


async def test_halt_while_a_child_is_in_flight_cancels_it_and_no_other_follows(db: Path, clock: ManualClock) -> None:
    async with paper(db, clock, dials=SimDials(latency=1.0)) as engine:  # every venue request takes 1 s
        reached, real_submit = asyncio.Event(), engine.venue.submit

        async def submit(order):  # noqa: ANN001, ANN202
            reached.set()
            return await real_submit(order)

        engine.venue.submit = submit  # type: ignore[method-assign]
        parent = await engine.algos.start_twap(BTC, "buy", "1", duration=60, slices=4, child_type="limit")
        # the child's record is written and the venue has it (a halt during the write refuses it)
        await reached.wait()
        [sending] = await engine.get_active_orders()
        assert sending.status is OrderStatus.SUBMITTING  # the first child is on its way to the venue
        report = await on_clock(clock, engine.halt_trading("mid-send"), engine)
        await settle(engine)
        assert report.clean, report.summary()
        assert engine.algos.get(parent.id).status is AlgoStatus.STOPPED  # type: ignore[union-attr]
        assert (await engine.get_order_by_id(sending.id)).status is OrderStatus.CANCELLED  # type: ignore[union-attr]
        for _ in range(5):
            await advance(clock, engine, 15)
        assert len(await children(engine, parent.id)) == 1 and engine.venue.open_order_count() == 0  # type: ignore[attr-defined]


async def test_halt_stops_a_paused_algorithm_too(engine: Engine, clock: ManualClock) -> None:
    parent = await engine.algos.start_twap(BTC, "buy", "1", duration=60, slices=4)
    await settle(engine)
    await engine.algos.pause(parent.id)
    await on_clock(clock, engine.halt_trading("paused too"), engine)
    assert engine.algos.get(parent.id).status is AlgoStatus.STOPPED  # type: ignore[union-attr]
    with pytest.raises(EngineError, match="only a paused one can be resumed"):
        await engine.algos.resume(parent.id)


async def test_a_child_refused_by_risk_fails_the_algorithm_with_the_reasons(db: Path, clock: ManualClock) -> None:
    settings = Settings(risk=RiskLimits(max_order_notional=D(10_000)))
    async with paper(db, clock, settings=settings) as engine:
        parent = await engine.algos.start_twap(BTC, "buy", "1", duration=60, slices=4)  # 0.25 BTC is ~12,750 USDT
        await settle(engine)
        failed = engine.algos.get(parent.id)
        assert failed is not None and failed.status is AlgoStatus.FAILED
        assert "above max_order_notional 10000" in (failed.reason or "")
        await advance(clock, engine, 60)
        [refused] = await children(engine, parent.id)
        assert refused.status is OrderStatus.REJECTED


async def test_restart_with_on_restart_stop_stops_it_and_cancels_its_open_child(db: Path, clock: ManualClock) -> None:
    async with paper(db, clock) as engine:
        parent = await engine.algos.start_twap(BTC, "buy", "1", duration=60, slices=4, child_type="limit")
        await settle(engine)
        await advance(clock, engine, 15)
        child = (await children(engine, parent.id))[-1]
        assert child.status is OrderStatus.OPEN
    settings = Settings(algos=AlgoSettings(on_restart="stop"))
    async with paper(db, clock, settings=settings) as engine:
        stopped = engine.algos.get(parent.id)
        assert stopped is not None and stopped.status is AlgoStatus.STOPPED
        assert stopped.reason == "stopped at restart (algos.on_restart = stop); 1 open child order cancelled"
        assert (await engine.get_order_by_id(child.id)).status is OrderStatus.CANCELLED  # type: ignore[union-attr]
        assert any(parent.id in note and "on_restart = stop" in note for note in engine.algos.restart_notes)
        await advance(clock, engine, 60)
        assert len(await children(engine, parent.id)) == 2
        again = await engine.algos.start_iceberg(BTC, "buy", "0.5", visible="0.25", price="50990")
        assert again.id != parent.id


async def test_restart_with_on_restart_resume_carries_on_from_its_progress(db: Path, clock: ManualClock) -> None:
    start = clock.now()
    async with paper(db, clock) as engine:
        parent = await engine.algos.start_twap(BTC, "buy", "1", duration=60, slices=4)
        await settle(engine)
        await advance(clock, engine, 15)
        assert engine.algos.get(parent.id).filled == D("0.5")  # type: ignore[union-attr]
    settings = Settings(algos=AlgoSettings(on_restart="resume"))
    async with paper(db, clock, settings=settings) as engine:
        resumed = engine.algos.get(parent.id)
        assert resumed is not None and resumed.status is AlgoStatus.RUNNING and resumed.filled == D("0.5")
        await advance(clock, engine, 14.9)
        assert len(await children(engine, parent.id)) == 2
        await advance(clock, engine, 0.1)
        await advance(clock, engine, 15)
        kids = await children(engine, parent.id)
        assert [(at(c, start), c.amount) for c in kids] == [(0.0, D("0.25")), (15.0, D("0.25")),
                                                                    (30.0, D("0.25")), (45.0, D("0.25"))]
        done = engine.algos.get(parent.id)
        assert done is not None and done.status is AlgoStatus.COMPLETED and done.filled == D("1")
        [pos] = await engine.get_positions()
        assert pos.size == D("1")


async def test_bad_input_is_refused_with_a_message_naming_it(engine: Engine) -> None:
    algos = engine.algos
    with pytest.raises(EngineError, match="floats are not accepted"):
        await algos.start_twap(BTC, "buy", 0.5, duration=60, slices=4)  # type: ignore[arg-type]
    with pytest.raises(EngineError, match="use fewer slices"):
        await algos.start_twap(BTC, "buy", "0.001", duration=60, slices=20)
    with pytest.raises(EngineError, match="duration: Input should be greater than 0"):
        await algos.start_twap(BTC, "buy", "1", duration=0, slices=4)
    with pytest.raises(EngineError, match="finer than the lot size"):
        await algos.start_twap(BTC, "buy", "1.00001", duration=60, slices=4)
    with pytest.raises(EngineError, match="visible amount 2 is above the total 1"):
        await algos.start_iceberg(BTC, "buy", "1", visible="2", price="50990")
    with pytest.raises(EngineError, match="price 50990.05 is finer than the tick size"):
        await algos.start_limit_then_market(BTC, "buy", "1", price="50990.05", timeout=10)
    with pytest.raises(EngineError, match="unknown symbol DOGE/USDT"):
        await algos.start_twap("DOGE/USDT", "buy", "1", duration=60, slices=4)
    with pytest.raises(EngineError, match="unknown algorithm 'A99999'"):
        await algos.pause("A99999")
    assert algos.list() == []


async def test_limit_then_market_resumed_after_a_restart_keeps_its_deadline(db: Path, clock: ManualClock) -> None:
    start = clock.now()
    async with paper(db, clock) as engine:
        parent = await engine.algos.start_limit_then_market(BTC, "buy", "0.2", price="50990", timeout=30)
        await settle(engine)
        await advance(clock, engine, 10)
    async with paper(db, clock, settings=Settings(algos=AlgoSettings(on_restart="resume"))) as engine:
        [limit] = await engine.get_active_orders()  # the resting limit came back with the journal
        assert limit.tag == f"algo:{parent.id}"
        await advance(clock, engine, 19.9)
        assert len(await children(engine, parent.id)) == 1
        await advance(clock, engine, 0.1)
        limit, market = await children(engine, parent.id)
        assert limit.status is OrderStatus.CANCELLED
        assert (market.type, market.amount, at(market, start)) == (OrderType.MARKET, D("0.2"), 30.0)
        assert engine.algos.get(parent.id).status is AlgoStatus.COMPLETED  # type: ignore[union-attr]


def fail_cancels(engine: Engine, order_ids: set[str], error: Exception) -> list[str]:
    """Make the venue answer a cancel of these orders with ``error`` (it keeps them open);
    returns the list every cancel attempt is appended to. Empty ``order_ids`` heals the venue."""
    venue = engine.venue
    real_cancel = type(venue).cancel
    attempts: list[str] = []

    async def cancel(order: Order):  # noqa: ANN202
        attempts.append(order.id)
        if order.id in order_ids:
            raise error
        return await real_cancel(venue, order)

    venue.cancel = cancel  # type: ignore[method-assign]
    return attempts


async def test_twap_places_no_child_while_one_whose_cancel_failed_still_works(engine: Engine, clock: ManualClock) -> None:
    parent = await engine.algos.start_twap(BTC, "buy", "0.3", duration=30, slices=3, child_type="limit")
    await settle(engine)
    [first] = await children(engine, parent.id)
    blocked = {first.id}
    fail_cancels(engine, blocked, VenueUnavailable("503 overloaded"))
    await advance(clock, engine, 10)  # slice 2: the venue keeps the first child open
    kids = await children(engine, parent.id)
    assert [(k.id, k.status) for k in kids] == [(first.id, OrderStatus.OPEN)]  # no second child beside it
    skipped = [e["data"]["reason"] for e in await engine.journal.events() if e["kind"] == "algo_skipped"]  # type: ignore[union-attr]
    assert skipped == [f"child {first.id} is still open (its cancel failed): no new child until it is gone"]
    blocked.clear()  # the venue recovers: the last slice cancels it again and takes all that is left
    await advance(clock, engine, 10)
    kids = await children(engine, parent.id)
    assert [(k.amount, k.status) for k in kids] == [(D("0.1"), OrderStatus.CANCELLED), (D("0.3"), OrderStatus.OPEN)]
    await cross(engine, kids[1])  # the best level holds 0.25
    await advance(clock, engine, 10)
    done = engine.algos.get(parent.id)
    assert done is not None and done.status is AlgoStatus.COMPLETED and done.filled == D("0.25")
    assert [p.size for p in await engine.get_positions()] == [D("0.25")]


async def test_twap_price_limit_bounds_what_its_market_children_pay(engine: Engine, clock: ManualClock) -> None:
    _, ask = engine.venue.market.best(BTC)  # type: ignore[attr-defined]
    parent = await engine.algos.start_twap(BTC, "buy", "1", duration=10, slices=1, price_limit=str(ask))
    await settle(engine)
    [kid] = await children(engine, parent.id)
    # A market order for 1 would walk past the best level (0.25); a limit IOC at the limit stops there.
    assert (kid.type, kid.time_in_force, kid.price) == (OrderType.LIMIT, TimeInForce.IOC, ask)
    assert kid.status is OrderStatus.EXPIRED and kid.filled == D("0.25") and kid.average_price == ask
    await advance(clock, engine, 10)
    done = engine.algos.get(parent.id)
    assert done is not None and done.status is AlgoStatus.COMPLETED and done.filled == D("0.25")
    assert done.reason == "duration over with 0.75 unfilled"


async def test_twap_price_limit_finer_than_the_tick_is_refused(engine: Engine) -> None:
    with pytest.raises(EngineError, match="price limit 51000.05 is finer than the tick size"):
        await engine.algos.start_twap(BTC, "buy", "1", duration=10, slices=1, price_limit="51000.05")


async def test_a_halt_while_a_pause_cancels_children_stays_stopped(db: Path, clock: ManualClock) -> None:
    async with paper(db, clock, dials=SimDials(latency=1.0)) as engine:  # every venue request takes 1 s
        parent = await engine.algos.start_twap(BTC, "buy", "1", duration=60, slices=4, child_type="limit")
        await settle(engine)
        await advance(clock, engine, 1)  # the venue acks the first child
        assert [c.status for c in await children(engine, parent.id)] == [OrderStatus.OPEN]
        pausing = asyncio.ensure_future(engine.algos.pause(parent.id))
        for _ in range(1000):
            if clock.sleepers:
                break
            await asyncio.sleep(0)
        assert not pausing.done()  # the child's cancel is on its way to the venue
        await on_clock(clock, engine.halt_trading("mid-pause"), engine)
        await on_clock(clock, pausing, engine)
        stopped = engine.algos.get(parent.id)
        assert stopped is not None and stopped.status is AlgoStatus.STOPPED and stopped.reason == "halt: mid-pause"
        kinds = [e["kind"] for e in await engine.journal.events()]  # type: ignore[union-attr]
        assert "algo_stopped" in kinds and "algo_paused" not in kinds


async def test_a_venue_error_from_a_cancel_does_not_kill_the_algorithm(engine: Engine, clock: ManualClock) -> None:
    parent = await engine.algos.start_twap(BTC, "buy", "0.3", duration=30, slices=3, child_type="limit")
    await settle(engine)
    [first] = await children(engine, parent.id)
    blocked = {first.id}
    fail_cancels(engine, blocked, OrderNotFound("unknown order"))
    real_fetch = engine.venue.fetch_order

    async def fetch_down(order: Order):  # noqa: ANN202 - the lookup after "not found" fails too
        raise VenueUnavailable("503 overloaded")

    engine.venue.fetch_order = fetch_down  # type: ignore[method-assign]
    stream = engine.events()
    await advance(clock, engine, 10)  # cancel_order raises the lookup's VenueError
    assert engine.algos.get(parent.id).status is AlgoStatus.RUNNING  # type: ignore[union-attr]
    notes = [e.text for e in stream.drain() if isinstance(e, Notice)]
    assert any(first.id in t for t in notes), notes
    blocked.clear()
    engine.venue.fetch_order = real_fetch  # type: ignore[method-assign]
    await advance(clock, engine, 10)  # the task is alive: the last slice cancels and places again
    kids = await children(engine, parent.id)
    assert [(k.amount, k.status) for k in kids] == [(D("0.1"), OrderStatus.CANCELLED), (D("0.3"), OrderStatus.OPEN)]


async def test_an_unexpected_exception_fails_the_algorithm_with_the_reason_journaled(
    engine: Engine, clock: ManualClock
) -> None:
    parent = await engine.algos.start_twap(BTC, "buy", "0.3", duration=30, slices=3, child_type="limit")
    await settle(engine)
    [first] = await children(engine, parent.id)
    fail_cancels(engine, {first.id}, RuntimeError("venue adapter bug"))
    await advance(clock, engine, 10)
    failed = engine.algos.get(parent.id)
    assert failed is not None and failed.status is AlgoStatus.FAILED
    assert failed.reason == ("RuntimeError: venue adapter bug; cancelling its children raised RuntimeError: "
                             "venue adapter bug")
    [event] = [e for e in await engine.journal.events() if e["kind"] == "algo_failed"]  # type: ignore[union-attr]
    assert event["data"]["algo"]["reason"] == failed.reason
    await advance(clock, engine, 20)
    assert len(await children(engine, parent.id)) == 1


async def test_iceberg_waits_a_refresh_before_retrying_a_failed_cancel(engine: Engine, clock: ManualClock) -> None:
    parent = await engine.algos.start_iceberg(BTC, "buy", "0.5", visible="0.25", price="50990", refresh=5)
    await settle(engine)
    [first] = await children(engine, parent.id)
    blocked = {first.id}
    attempts = fail_cancels(engine, blocked, VenueUnavailable("503 overloaded"))
    await advance(clock, engine, 5)
    assert attempts == [first.id]  # one try, not a loop hammering the venue
    await advance(clock, engine, 4.9)
    assert attempts == [first.id]
    await advance(clock, engine, 0.1)
    assert attempts == [first.id, first.id]
    blocked.clear()
    await advance(clock, engine, 5)
    old, new = await children(engine, parent.id)
    assert old.status is OrderStatus.CANCELLED and new.status is OrderStatus.OPEN and new.amount == D("0.25")


async def test_limit_then_market_goes_to_market_only_once_its_limit_is_gone(engine: Engine, clock: ManualClock) -> None:
    parent = await engine.algos.start_limit_then_market(BTC, "buy", "0.2", price="50990", timeout=30)
    await settle(engine)
    [limit] = await children(engine, parent.id)
    blocked = {limit.id}
    attempts = fail_cancels(engine, blocked, VenueUnavailable("503 overloaded"))
    await advance(clock, engine, 30)
    assert attempts == [limit.id] and len(await children(engine, parent.id)) == 1  # no market beside the limit
    await advance(clock, engine, 4.9)
    assert attempts == [limit.id]  # retried on the engine clock, not at once
    blocked.clear()
    await advance(clock, engine, 0.1)
    limit, market = await children(engine, parent.id)
    assert limit.status is OrderStatus.CANCELLED and (market.type, market.amount) == (OrderType.MARKET, D("0.2"))
    assert engine.algos.get(parent.id).status is AlgoStatus.COMPLETED  # type: ignore[union-attr]
