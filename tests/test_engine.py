"""The engine facade on the simulated venue: write-ahead journaling, settle-by-lookup,
de-duplicated fills, events, restart, and the ledger matching the venue's own books."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest

from core import Engine, EngineError, ManualClock, Order, OrderRequest, OrderStatus, TradingState
from core.errors import VenueTimeout
from core.events import AccountChanged, FillReceived, OrderUpdated, PositionChanged
from core.venues.base import VenueFill, VenueReport
from core.venues.sim import SimDials

from .conftest import paper


def limit(price: str, amount: str = "0.01", side: str = "buy", symbol: str = "BTC/USDT", **kw: object) -> OrderRequest:
    return OrderRequest(symbol=symbol, side=side, type="limit", amount=D(amount), price=D(price), **kw)  # type: ignore[arg-type]


async def kinds(engine: Engine, order_id: str) -> list[str]:
    return [e["kind"] for e in await engine.journal.events(order_id=order_id)]  # type: ignore[union-attr]


async def test_readme_flow_place_then_cancel(engine: Engine) -> None:
    order = await engine.place_order(limit("50000"))
    assert order.status is OrderStatus.OPEN and order.client_order_id == order.id
    cancelled = await engine.cancel_order(order.id)
    assert cancelled.status is OrderStatus.CANCELLED
    assert await kinds(engine, order.id) == ["order_created", "order_acked", "cancel_requested", "order_cancelled"]
    assert await engine.get_positions() == []
    assert (await engine.get_account_status()).equity == D(100_000)


async def test_intent_is_durable_before_the_venue_hears(engine: Engine) -> None:
    seen: list[list[str]] = []
    real_submit = engine.venue.submit

    async def spying_submit(order: Order):  # noqa: ANN202
        seen.append(await kinds(engine, order.id))
        return await real_submit(order)

    engine.venue.submit = spying_submit  # type: ignore[method-assign]
    await engine.place_order(limit("50000"))
    assert seen == [["order_created"]]


async def test_market_order_books_fills_position_and_fees(engine: Engine) -> None:
    order = await engine.place_market_order("BTC/USDT", "buy", D("0.5"))
    assert order.status is OrderStatus.FILLED
    assert order.average_price == D("51000.35") and order.fee == D("10.20007")
    [pos] = await engine.get_positions()
    assert (pos.side.value, pos.size, pos.entry_price) == ("long", D("0.5"), D("51000.35"))
    status = await engine.get_account_status()
    assert status.balance == D(100_000) - D("10.20007")
    assert status.fees == D("10.20007")


async def test_venue_rejection_comes_back_as_a_rejected_order_and_is_journaled(db: Path, clock: ManualClock) -> None:
    async with paper(db, clock, SimDials(reject_rate=1.0)) as engine:
        order = await engine.place_order(limit("50000"))
        assert order.status is OrderStatus.REJECTED
        assert "reject_rate" in (order.error or "")
        assert await kinds(engine, order.id) == ["order_created", "order_rejected"]


async def test_risk_refusal_never_reaches_the_venue(engine: Engine) -> None:
    before = engine.venue.requests  # type: ignore[attr-defined]
    order = await engine.place_order(limit("51000.05"))
    assert order.status is OrderStatus.REJECTED and "tick size" in (order.error or "")
    assert engine.venue.requests == before  # type: ignore[attr-defined]
    assert await kinds(engine, order.id) == ["risk_refused"]


async def test_precheck_refusals_are_journaled_with_reasons(engine: Engine) -> None:
    first = await engine.place_order(limit("50000", client_order_id="abc1"))
    dup = await engine.place_order(limit("50000", client_order_id="abc1"))
    unknown = await engine.place_order(limit("1", symbol="DOGE/USDT"))
    assert first.status is OrderStatus.OPEN
    assert dup.status is OrderStatus.REJECTED and "duplicate client order id abc1" in (dup.error or "")
    assert "unknown symbol DOGE/USDT" in (unknown.error or "")
    [event] = await engine.journal.events(order_id=dup.id)  # type: ignore[union-attr]
    assert event["kind"] == "risk_refused" and event["data"]["reasons"] == ["duplicate client order id abc1"]


async def test_lost_answer_is_settled_by_lookup_never_resent(db: Path, clock: ManualClock) -> None:
    async with paper(db, clock, SimDials(timeout_after_accept_rate=1.0)) as engine:
        submits = 0
        real_submit = engine.venue.submit

        async def counting_submit(order: Order):  # noqa: ANN202
            nonlocal submits
            submits += 1
            return await real_submit(order)

        engine.venue.submit = counting_submit  # type: ignore[method-assign]
        order = await engine.place_order(limit("50000"))
        assert submits == 1
        assert order.status is OrderStatus.OPEN  # found by client order id
        assert engine.venue.open_order_count() == 1  # type: ignore[attr-defined]
        assert await kinds(engine, order.id) == ["order_created", "order_unresolved", "order_acked"]


async def test_timeout_before_the_venue_got_it_ends_failed_after_lookup(engine: Engine) -> None:
    async def lost_submit(order: Order):  # noqa: ANN202
        raise VenueTimeout("connection reset before the request was written")

    engine.venue.submit = lost_submit  # type: ignore[method-assign]
    order = await engine.place_order(limit("50000"))
    assert order.status is OrderStatus.FAILED
    assert "never reached" in (order.error or "")


async def test_unresolved_order_stays_unresolved_when_lookup_is_not_definitive(engine: Engine) -> None:
    async def lost_submit(order: Order):  # noqa: ANN202
        raise VenueTimeout("read timeout")

    engine.venue.submit = lost_submit  # type: ignore[method-assign]
    engine.venue.lookup_is_definitive = False  # type: ignore[misc]
    order = await engine.place_order(limit("50000"))
    assert order.status is OrderStatus.UNRESOLVED  # may be live: never called failed
    with pytest.raises(EngineError, match="cannot be cancelled now"):
        await engine.cancel_order(order.id)


async def test_programming_errors_are_not_swallowed(engine: Engine) -> None:
    async def broken_submit(order: Order):  # noqa: ANN202
        raise RuntimeError("bug in a venue")

    engine.venue.submit = broken_submit  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="bug in a venue"):
        await engine.place_order(limit("50000"))
    [order] = await engine.get_active_orders()
    assert order.status is OrderStatus.UNRESOLVED


async def test_duplicate_and_late_fills_are_booked_once(engine: Engine) -> None:
    order = await engine.place_order(limit("50000", amount="0.2"))
    live = engine._orders[order.id]
    fill = VenueFill("T1", D("0.1"), D("50000"), D("1"), "USDT", "maker", engine.clock.now())  # type: ignore[arg-type]
    report = VenueReport(order.client_order_id, OrderStatus.PARTIALLY_FILLED, filled=D("0.1"), fills=[fill])
    await engine._commit([engine._absorb(live, report, "order_updated")])
    await engine._commit([engine._absorb(live, report, "order_updated")])  # the same report again
    assert live.filled == D("0.1") and live.status is OrderStatus.PARTIALLY_FILLED
    # the venue cancels the rest, then a fill that happened before the cancel arrives late
    await engine._commit([engine._absorb(live, VenueReport(order.client_order_id, OrderStatus.CANCELLED), "x")])
    late = VenueFill("T2", D("0.1"), D("50000"), D("1"), "USDT", "maker", engine.clock.now())  # type: ignore[arg-type]
    await engine._commit([engine._absorb(live, VenueReport(order.client_order_id, OrderStatus.CANCELLED, fills=[fill, late]), "x")])
    assert live.filled == D("0.2") and live.status is OrderStatus.FILLED
    [pos] = await engine.get_positions()
    assert pos.size == D("0.2") and pos.fees == D("2")
    fills = (await engine.journal.load()).fills  # type: ignore[union-attr]
    assert [f.id for f in fills] == ["T1", "T2"]


async def test_events_are_published_after_the_journal_and_in_order(engine: Engine) -> None:
    stream = engine.events()
    await engine.place_market_order("BTC/USDT", "buy", D("0.25"))
    events = stream.drain()
    assert [type(e) for e in events] == [OrderUpdated, FillReceived, PositionChanged, AccountChanged]
    assert events[0].order.status is OrderStatus.FILLED
    assert events[2].position.size == D("0.25")


async def test_resting_limit_fills_on_tick_and_position_gets_pnl(engine: Engine) -> None:
    order = await engine.place_order(limit("50990", amount="0.25"))
    engine.venue.market.script("BTC/USDT", ["50989.9", "51100"])  # type: ignore[attr-defined]
    await engine.tick()
    filled = await engine.get_order_by_id(order.id)
    assert filled is not None and filled.status is OrderStatus.FILLED and filled.average_price == D("50990")
    await engine.tick()
    [pos] = await engine.get_positions()
    assert pos.mark_price == D("51100")
    assert pos.unrealized_pnl == D("0.25") * (D("51100") - D("50990"))  # 27.5


async def test_engine_ledger_matches_the_venue_books(engine: Engine) -> None:
    await engine.place_market_order("BTC/USDT", "buy", D("0.7"))
    await engine.place_order(limit("51100", amount="0.3", side="sell"))
    await engine.place_market_order("ETH/USDT", "sell", D("2"))
    for _ in range(40):
        await engine.tick()
    await engine.place_market_order("BTC/USDT", "sell", D("1"))  # flips short
    for _ in range(5):
        await engine.tick()
    ours = await engine.get_account_status()
    theirs = engine.venue.ledger.status()  # type: ignore[attr-defined]
    for field in ("balance", "equity", "realized_pnl", "unrealized_pnl", "fees", "exposure"):
        assert getattr(ours, field) == getattr(theirs, field), field


async def test_modify_amends_in_place_and_bad_modify_is_explained(engine: Engine) -> None:
    order = await engine.place_order(limit("50000", amount="0.1"))
    modified = await engine.modify_order(order.id, price=D("50100"), amount=D("0.2"))
    assert (modified.price, modified.amount, modified.status) == (D("50100"), D("0.2"), OrderStatus.OPEN)
    assert (await kinds(engine, order.id))[-1] == "order_modified"
    with pytest.raises(EngineError, match="finer than the tick size"):
        await engine.modify_order(order.id, price=D("50100.01"))
    with pytest.raises(EngineError, match="nothing to modify"):
        await engine.modify_order(order.id)
    with pytest.raises(EngineError, match="unknown order"):
        await engine.modify_order("nope", price=D(1))
    assert (await engine.get_order_by_id(order.id)).price == D("50100")  # type: ignore[union-attr]


async def test_cancel_replace_where_the_venue_cannot_amend(engine: Engine) -> None:
    engine.venue.can_amend = False  # type: ignore[misc]
    order = await engine.place_order(limit("50000", amount="0.1"))
    replacement = await engine.modify_order(order.id, price=D("50100"))
    assert replacement.id != order.id and replacement.price == D("50100") and replacement.amount == D("0.1")
    assert (await engine.get_order_by_id(order.id)).status is OrderStatus.CANCELLED  # type: ignore[union-attr]
    assert replacement.tag == f"replaces {order.id}"


async def test_cancel_all_per_symbol(engine: Engine) -> None:
    btc = [await engine.place_order(limit(p)) for p in ("50000", "50100")]
    eth = await engine.place_order(limit("3100", amount="0.1", symbol="ETH/USDT"))
    done = await engine.cancel_all_orders("BTC/USDT")
    assert {o.id for o in done} == {o.id for o in btc}
    assert all(o.status is OrderStatus.CANCELLED for o in done)
    assert [o.id for o in await engine.get_active_orders()] == [eth.id]


async def test_cancel_of_a_final_order_is_a_no_op(engine: Engine) -> None:
    order = await engine.place_market_order("BTC/USDT", "buy", D("0.01"))
    again = await engine.cancel_order(order.id)
    assert again.status is OrderStatus.FILLED


async def test_restart_restores_everything_and_resting_orders_keep_working(db: Path, clock: ManualClock) -> None:
    async with paper(db, clock) as engine:
        await engine.place_market_order("BTC/USDT", "buy", D("0.5"))
        resting = await engine.place_order(limit("50990", amount="0.25"))
        for _ in range(3):
            await engine.tick()
        before_orders = await engine.get_orders()
        before_positions = await engine.get_positions()
        before_status = await engine.get_account_status()
    async with paper(db, clock) as engine:
        assert await engine.get_orders() == before_orders
        assert await engine.get_positions() == before_positions
        assert await engine.get_account_status() == before_status
        engine.venue.market.script("BTC/USDT", ["50989.9"])  # type: ignore[attr-defined]
        await engine.tick()
        assert (await engine.get_order_by_id(resting.id)).status is OrderStatus.FILLED  # type: ignore[union-attr]
        new = await engine.place_order(limit("50000"))
        assert new.id not in {o.id for o in before_orders}


async def test_halted_state_survives_restart_and_refuses_orders(db: Path, clock: ManualClock) -> None:
    async with paper(db, clock) as engine:
        await engine.journal.write(  # type: ignore[union-attr]
            "halted", ts="t", state={"trading_state": "HALTED", "trading_state_reason": "test"}
        )
    async with paper(db, clock) as engine:
        assert engine.trading_state is TradingState.HALTED
        order = await engine.place_order(limit("50000"))
        assert order.status is OrderStatus.REJECTED and "HALTED" in (order.error or "")


async def test_run_loop_ticks_on_the_clock_and_stops(engine: Engine, clock: ManualClock) -> None:
    task = asyncio.create_task(engine.run())
    await asyncio.sleep(0)
    start = engine.venue.market.steps  # type: ignore[attr-defined]
    for _ in range(4):
        clock.advance(engine.tick_interval)
        for _ in range(5):
            await asyncio.sleep(0)
    assert engine.venue.market.steps == start + 4  # type: ignore[attr-defined]
    engine.stop()
    clock.advance(engine.tick_interval)
    await asyncio.wait_for(task, 1)


async def test_engine_refuses_calls_before_start(db: Path, clock: ManualClock) -> None:
    engine = paper(db, clock)
    with pytest.raises(EngineError, match="not running"):
        await engine.place_order(limit("50000"))


async def test_an_unresolved_order_settled_by_the_poll_gets_its_ack_time(engine: Engine, clock: ManualClock) -> None:
    # the submit answer is lost and no lookup finds the order; the venue's poll is what first
    # reports it (filled). That report is the ack: execution quality needs acked_at to measure it
    venue = engine.venue
    real_submit = venue.submit

    async def lost_submit(order: Order):  # noqa: ANN202
        raise VenueTimeout("read timeout")

    async def not_visible(order: Order) -> None:
        return None

    venue.submit = lost_submit  # type: ignore[method-assign]
    venue.fetch_order = not_visible  # type: ignore[method-assign]
    venue.lookup_is_definitive = False  # type: ignore[misc]
    order = await engine.place_order(limit("50000"))
    assert order.status is OrderStatus.UNRESOLVED and order.acked_at is None
    await real_submit(engine._orders[order.id])  # it did reach the venue, where it rests
    venue.market.script("BTC/USDT", ["49000"])  # type: ignore[attr-defined]
    clock.advance(2)
    await engine.tick()  # the poll reports the maker fill
    settled = await engine.get_order_by_id(order.id)
    assert settled is not None and settled.status is OrderStatus.FILLED
    assert settled.acked_at == clock.now() and settled.acked_at - settled.submitted_at == timedelta(seconds=2)  # type: ignore[operator]
    clock.advance(1)
    await engine.tick()
    assert (await engine.get_order_by_id(order.id)).acked_at == settled.acked_at  # type: ignore[union-attr]


async def test_start_loads_the_halts_retry_library_unless_the_caller_will(db: Path, clock: ManualClock,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(Engine, "warm_halt", lambda self: calls.append(self.db_path.name))
    async with paper(db, clock) as engine:  # a script's start: warmed
        assert calls == [db.name]
    calls.clear()
    engine = paper(db, clock)
    await engine.start(warm_halt=False)  # the console's: it warms after its first frame
    assert calls == []
    await engine.close()


async def test_warm_halt_imports_tenacity(engine: Engine) -> None:
    module = await engine.warm_halt()
    assert module.__name__ == "tenacity" and hasattr(module, "AsyncRetrying")
