"""Defects left open by the second review round, each reproduced as it was reported and pinned
here: a trades read that fails after an order was created, and a crash in the middle of a cancel."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from core import ManualClock, OrderRequest, OrderStatus
from core.events import Notice
from core.journal import JournalError

from .conftest import paper
from .loopback.okx import LoopbackOkx, OkxError
from .test_loopback_okx import BTC
from .test_loopback_okx import live as okx_live
from .test_loopback_okx import tick as okx_tick
from .test_restart_cancels import crash_mid_cancel

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def limit(price: str, amount: str = "0.01", symbol: str = "BTC/USDT") -> OrderRequest:
    return OrderRequest(symbol=symbol, side="buy", type="limit", amount=D(amount), price=D(price))  # type: ignore[arg-type]


async def test_an_order_whose_trades_read_fails_after_it_was_created_is_live_not_refused(
        okx: LoopbackOkx, db: Path) -> None:
    """OKX answers a placement with ids only; the venue then reads the order, finds it partly
    filled and reads its trades. That read failing (a non-transient OKX code) once made the
    submit raise OrderRejected: the order was booked REJECTED, out of the live set, while it
    worked at the exchange, and its fills were never booked. A failure after the create is
    ambiguous, as a lost answer is."""
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
        # ambiguous, not refused: settled at once by a lookup of its client id, which reads the trades
        assert (order.status, order.filled) == (OrderStatus.PARTIALLY_FILLED, D("0.004")), order.error
        assert [o.id for o in await engine.get_active_orders()] == [order.id]
        await okx_tick(engine)
        got = await engine.get_order_by_id(order.id)
        assert (got.status, got.filled) == (OrderStatus.PARTIALLY_FILLED, D("0.004"))  # booked once
        positions = {p.symbol: p.size for p in await engine.get_positions()}
        assert D("0.0039") < positions[BTC] <= D("0.004")  # less the fee taken in BTC


async def test_a_cancel_unconfirmed_at_a_crash_leaves_the_order_open_and_says_so(db: Path, clock: ManualClock) -> None:
    """The restored order used to stay cancelling for good while it worked at the venue:
    reports of a cancelling order are not taken, and modify refused it. It is not cancelled
    again either (it may have been half of a cancel-replace): it is open, and the desk is told."""
    order = await crash_mid_cancel(paper(db, clock), limit("49000"), reaches_venue=False)
    async with paper(db, clock) as again:
        got = await again.get_order_by_id(order.id)
        assert got.status is OrderStatus.OPEN, got.status
        assert again.venue.open_order_count() == 1  # type: ignore[attr-defined]
        heard = again.events().drain()  # a subscriber after the start hears what the restore said
        assert any(isinstance(e, Notice) and order.id in e.text and "not confirmed" in e.text for e in heard), heard
        moved = await again.modify_order(order.id, price=D("48900"))
        assert moved.status is OrderStatus.OPEN and moved.price == D("48900")


async def test_a_cancel_that_reached_the_exchange_before_a_crash_ends_the_order(okx: LoopbackOkx, db: Path) -> None:
    order = await crash_mid_cancel(okx_live(okx, db), limit("49000"), reaches_venue=True)
    assert okx.order_by_client_id(order.client_order_id).state == "canceled"  # type: ignore[union-attr]
    async with okx_live(okx, db) as again:
        got = await again.get_order_by_id(order.id)
        assert got.status is OrderStatus.CANCELLED, (got.status, got.error)
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
