"""A crash in the middle of a contingent's own cancel. The manager tells its cancels from the
trader's: a leg it cancelled is replaced by the rest, one the trader cancelled ends an OCO. That
was known in memory only, so a restart that booked the manager's cancel took it for the trader's:
the OCO ended and the rest was never placed. The intent is journaled before the cancel is sent."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from contextlib import suppress
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from core import Engine, ManualClock, Order, OrderRequest, OrderStatus
from core.events import Notice

from .conftest import paper
from .loopback.okx import LoopbackOkx
from .test_loopback_okx import live as okx_live
from .test_loopback_okx import tick as okx_tick

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

S = OrderStatus
BTC = "BTC/USDT"


def limit(side: str, price: str, amount: str = "0.01") -> OrderRequest:
    return OrderRequest(symbol=BTC, side=side, type="limit", amount=D(amount), price=D(price),  # type: ignore[arg-type]
                        reduce_only=False)


def leg(engine: Engine, contingent_id: str, role: str) -> Order:
    """The working order of a leg."""
    c = engine.get_contingent(contingent_id)
    assert c is not None and c.legs[role].orders, f"{role} of {contingent_id} has no order"
    return engine._orders[c.legs[role].orders[-1]]


async def crash_in_cancel(engine: Engine, work: Awaitable[Any]) -> list[str]:
    """Run ``work`` until the venue has taken a cancel, then crash: its answer never comes and
    the journal is abandoned as it is. Returns the ids of the orders whose cancel was sent."""
    reached, real_cancel, sent = asyncio.Event(), engine.venue.cancel, []

    async def answer_lost(o: Order) -> Any:
        await real_cancel(o)
        sent.append(o.id)
        reached.set()
        await asyncio.Event().wait()

    engine.venue.cancel = answer_lost  # type: ignore[method-assign]
    task = asyncio.ensure_future(work)
    await reached.wait()
    await engine.journal.close()  # type: ignore[union-attr]
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
    await engine.venue.close()
    return sent


async def test_oco_leg_resized_cancel_first_is_replaced_after_a_crash_mid_cancel(okx: LoopbackOkx, db: Path) -> None:
    """OKX cannot amend: when the buy fills 0.004 of 0.01, the plain sell is cancelled first and the
    rest placed by the next step. The crash comes after the cancel reached the exchange."""
    engine = okx_live(okx, db)
    await engine.start()
    oco = await engine.place_oco(limit("buy", "49000"), limit("sell", "51000"))
    buy, sell = leg(engine, oco.id, "first"), leg(engine, oco.id, "second")
    assert (buy.status, sell.status) == (S.OPEN, S.OPEN)
    okx.fill(okx.order_by_client_id(buy.client_order_id), "0.004")  # type: ignore[arg-type]
    assert await crash_in_cancel(engine, okx_tick(engine)) == [sell.id]  # the poll books the fill, the manager cancels
    assert okx.order_by_client_id(sell.client_order_id).state == "canceled"  # type: ignore[union-attr]
    assert engine._orders[sell.id].status is S.CANCELLING

    async with okx_live(okx, db) as again:
        assert again._orders[sell.id].status is S.CANCELLED
        c = again.get_contingent(oco.id)
        assert c is not None and c.done is None, c.done
        rest = leg(again, oco.id, "second")
        assert rest.id != sell.id
        assert (rest.status, rest.side.value, rest.price, rest.amount, rest.reduce_only) == (
            S.OPEN, "sell", D(51000), D("0.006"), False)
        assert (leg(again, oco.id, "first").id, again._orders[buy.id].remaining) == (buy.id, D("0.006"))
        assert sorted((o.side, o.remaining) for o in okx.open_orders()) == [("buy", D("0.006")), ("sell", D("0.006"))]
        journaled = await again.journal.events()  # type: ignore[union-attr]
        events = [(e["kind"], e["order_id"] or e["data"].get("order_id")) for e in journaled]
        assert events.index(("leg_cancelling", sell.id)) < events.index(("cancel_requested", sell.id))  # write-ahead

        # the trader's cancel still ends the OCO: its sibling goes, nothing is placed again
        await again.cancel_order(rest.id)
        c = again.get_contingent(oco.id)
        assert c is not None and c.done == "filled 0.004 of 0.01"
        assert c.legs["second"].orders == [sell.id, rest.id]
        assert again._orders[buy.id].status is S.CANCELLED and okx.open_orders() == []


async def test_sim_forgets_a_cancel_in_flight_at_a_crash_and_the_leg_is_resized_again(db: Path, clock: ManualClock) -> None:
    """The sim's book is rebuilt from the journal: a cancel in flight at the crash never took there.
    The restart finds the sell working (and says so); the manager amends it to the rest, and its
    cancel intent is void: a later cancel of that order is the trader's and ends the OCO."""
    engine = paper(db, clock)
    engine.venue.can_amend = False  # type: ignore[misc]  # cancel-first before the crash
    await engine.start()
    engine.venue.market.script(BTC, ["51000"])  # type: ignore[attr-defined]
    await engine.tick()
    oco = await engine.place_oco(limit("buy", "50000", "0.5"), limit("sell", "52000", "0.5"))
    buy, sell = leg(engine, oco.id, "first"), leg(engine, oco.id, "second")
    engine.venue.market.script(BTC, ["49999.9"])  # type: ignore[attr-defined]  # the ask touches 50000: half fills
    assert await crash_in_cancel(engine, engine.tick()) == [sell.id]
    assert engine._orders[buy.id].filled == D("0.25")

    async with paper(db, clock) as again:  # the sim amends
        assert any(isinstance(e, Notice) and sell.id in e.text and "not confirmed" in e.text for e in again.events().drain())
        got = leg(again, oco.id, "second")
        assert (got.id, got.status, got.remaining) == (sell.id, S.OPEN, D("0.25"))
        await again.cancel_order(sell.id)
        c = again.get_contingent(oco.id)
        assert c is not None and c.done == "filled 0.25 of 0.5"
        assert c.legs["second"].orders == [sell.id]  # not placed again
        assert again._orders[buy.id].status is S.CANCELLED
