"""Defects left open by the second review round, each reproduced as it was reported and pinned
here: a trades read that fails after an order was created, and a crash in the middle of a cancel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from core import ManualClock, OrderRequest, OrderStatus
from core.journal import JournalError

from .conftest import paper
from .loopback.okx import LoopbackOkx, OkxError
from .test_loopback_okx import BTC
from .test_loopback_okx import live as okx_live
from .test_loopback_okx import tick as okx_tick

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def limit(price: str, amount: str = "0.01", symbol: str = "BTC/USDT") -> OrderRequest:
    return OrderRequest(symbol=symbol, side="buy", type="limit", amount=D(amount), price=D(price))  # type: ignore[arg-type]


@pytest.fixture
async def okx() -> AsyncIterator[LoopbackOkx]:
    async with LoopbackOkx() as srv:
        yield srv


async def test_an_order_whose_trades_read_fails_after_it_was_created_is_live_not_refused(
        okx: LoopbackOkx, db: Path) -> None:
    """OKX answers a placement with ids only; the venue then reads the order, finds it partly
    filled and reads its trades. That read failing (a non-transient OKX code) once made the
    submit raise OrderRejected: the order was booked REJECTED, out of the live set, while it
    worked at the exchange, and its fills were never booked."""
    prefix = "/api/v5/"
    place, signed = okx._routes[("POST", prefix + "trade/batch-orders")]
    broken = {"reads": 1}

    def place_and_match(params: Any) -> Any:  # the limit order meets 0.004 on arrival
        out = place(params)
        okx.fill(okx.orders[out[0]["ordId"]], "0.004")
        return out

    def wrap(read: Any) -> Any:
        def fills(params: Any) -> Any:
            if broken["reads"]:
                broken["reads"] -= 1
                raise OkxError("50012", "Account status invalid")
            return read(params)
        return fills

    okx._routes[("POST", prefix + "trade/batch-orders")] = (place_and_match, signed)
    for path in ("trade/fills", "trade/fills-history"):
        read, auth = okx._routes[("GET", prefix + path)]
        okx._routes[("GET", prefix + path)] = (wrap(read), auth)
    async with okx_live(okx, db) as engine:
        order = await engine.place_order(limit("49000"))
        assert broken["reads"] == 0  # the read did fail
        assert order.status.is_live and order.filled == 0, (order.status, order.error)
        assert [o.id for o in await engine.get_active_orders()] == [order.id]
        await okx_tick(engine)  # the tracker reads the trades again
        got = await engine.get_order_by_id(order.id)
        assert (got.status, got.filled) == (OrderStatus.PARTIALLY_FILLED, D("0.004"))
        positions = {p.symbol: p.size for p in await engine.get_positions()}
        assert positions[BTC] > 0


async def test_a_cancel_in_flight_at_a_crash_is_sent_again_at_restart(db: Path, clock: ManualClock) -> None:
    """The cancel was journaled (cancelling) and the process died before the venue answered.
    The restored order used to stay cancelling for good while it worked at the venue: reports of
    a cancelling order are not taken, and modify refused it."""
    engine = paper(db, clock)
    await engine.start()
    order = await engine.place_order(limit("49000"))
    assert order.status is OrderStatus.OPEN, order.error
    reached = asyncio.Event()

    async def never_answers(o: Any) -> Any:
        reached.set()
        await asyncio.Event().wait()

    engine.venue.cancel = never_answers  # type: ignore[method-assign]
    cancelling = asyncio.ensure_future(engine.cancel_order(order.id))
    await reached.wait()
    await engine.journal.close()  # type: ignore[union-attr]  # a crash: the answer never comes
    cancelling.cancel()
    async with paper(db, clock) as again:
        got = await again.get_order_by_id(order.id)
        assert got.status is OrderStatus.CANCELLED, got.status
        assert again.venue.open_order_count() == 0  # type: ignore[attr-defined]
        assert not await again.get_active_orders()


async def test_a_fill_the_journal_failed_to_record_is_not_passed_off_as_recorded(db: Path, clock: ManualClock) -> None:
    """The engine awaited only the last write of a commit (the order's), taking it for proof that
    every earlier write (its fills) was durable. A failed batch is retried write by write, so the
    fill could fail alone while the order write succeeded: the placement returned as if all
    were recorded, and a restart would have lost the position."""
    async with paper(db, clock) as engine:
        journal = engine.journal
        assert journal is not None
        real_write = journal.write

        def write(kind: str, **kw: Any) -> Any:  # a fill row SQLite cannot store (a lone surrogate)
            return real_write("fill\udc80" if kind == "fill" else kind, **kw)

        journal.write = write  # type: ignore[method-assign]
        market = OrderRequest(symbol="BTC/USDT", side="buy", type="market", amount=D("0.01"))  # type: ignore[arg-type]
        with pytest.raises(JournalError, match="journal write 'fill"):
            await engine.place_order(market)
        journal.write = real_write  # type: ignore[method-assign]
        kinds = [e["kind"] for e in await journal.events()]
        assert "fill" not in kinds and "order_filled" in kinds  # the order write alone got through
