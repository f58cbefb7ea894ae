"""Reconciliation reports and ``Engine.ignore_order``, against the loopback Binance server.

An order another client placed is adopted at start (tagged external); ignoring it takes it out
of tracking without a word to the venue, and that survives a restart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal as D
from pathlib import Path

import pytest

from core import Engine, EngineError, OrderRequest, OrderStatus

from .loopback.binance import LoopbackBinance, make_ccxt_binance
from .test_ccxt_venue import live

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
async def server() -> AsyncIterator[LoopbackBinance]:
    async with LoopbackBinance() as srv:
        yield srv


async def place_elsewhere(server: LoopbackBinance, client_id: str = "otherdesk1") -> None:
    other = make_ccxt_binance(server)
    try:
        await other.load_markets()
        await other.create_order("BTC/USDT", "limit", "sell", 0.01, 52000, {"clientOrderId": client_id})
    finally:
        await other.close()


async def adopted(engine: Engine) -> str:
    [external] = [o for o in await engine.get_active_orders() if o.tag == "external"]
    return external.id


async def test_ignored_external_order_is_left_alone_and_stays_ignored_after_restart(server: LoopbackBinance,
                                                                                   db: Path) -> None:
    await place_elsewhere(server)
    async with live(server, db) as engine:
        external = await adopted(engine)
        assert engine.last_reconciliation[engine.account]["adopted"] == [external]
        cancels_before = server.count("DELETE", "/api/v3/order")

        ignored = await engine.ignore_order(external, "the other desk's order")

        assert ignored.status is OrderStatus.OPEN and ignored.error == "ignored: the other desk's order"
        assert await engine.get_active_orders() == []
        assert engine.ignored_orders() == {external: "the other desk's order"}
        assert server.count("DELETE", "/api/v3/order") == cancels_before  # the venue was told nothing
        assert server.order_by_client_id("otherdesk1").is_open  # type: ignore[union-attr]
        [event] = [e for e in await engine.journal.events() if e["kind"] == "order_ignored"]  # type: ignore[union-attr]
        assert (event["order_id"], event["data"]["reason"]) == (external, "the other desk's order")

        server.fill(server.order_by_client_id("otherdesk1"))  # type: ignore[arg-type]
        await engine.tick()  # its fill at the venue is not booked: the desk does not track it
        assert await engine.get_positions() == []

    await place_elsewhere(server, "otherdesk2")
    async with live(server, db) as engine:  # restart: still ignored, not adopted a second time
        assert engine.ignored_orders() == {external: "the other desk's order"}
        report = engine.last_reconciliation[engine.account]
        second = await adopted(engine)
        assert report["adopted"] == [second] and second != external
        assert [o.id for o in await engine.get_active_orders()] == [second]
        restored = await engine.get_order_by_id(external)
        assert restored is not None and restored.error == "ignored: the other desk's order"


async def test_an_ignored_order_still_open_at_the_venue_is_named_and_a_halt_cancels_it(server: LoopbackBinance,
                                                                                      db: Path) -> None:
    await place_elsewhere(server)
    async with live(server, db) as engine:
        external = await adopted(engine)
        await engine.ignore_order(external, "left to its owner")
        report = await engine.reconcile()
        assert (report["adopted"], report["ignored"]) == ([], [external])
        halt = await engine.halt_trading("end of day")  # the halt empties the venue, ignored or not
        assert halt.clean and server.open_orders() == []


async def test_ignore_order_refuses_what_it_must_not_do(server: LoopbackBinance, db: Path) -> None:
    await place_elsewhere(server)
    async with live(server, db) as engine:
        external = await adopted(engine)
        ours = await engine.place_order(OrderRequest(symbol="BTC/USDT", side="buy", type="limit", amount=D("0.01"),
                                                     price=D("49000")))
        with pytest.raises(EngineError, match="placed by this desk: cancel it instead"):
            await engine.ignore_order(ours.id, "not mine")
        with pytest.raises(EngineError, match="needs a reason"):
            await engine.ignore_order(external, "  ")
        with pytest.raises(EngineError, match="unknown order"):
            await engine.ignore_order("td-nope", "typo")
        assert {o.id for o in await engine.get_active_orders()} == {external, ours.id}


async def test_reconcile_names_missed_fills_and_a_sim_account_has_nothing_to_reconcile(server: LoopbackBinance,
                                                                                         db: Path, tmp_path: Path) -> None:
    async with live(server, db) as engine:
        order = await engine.place_order(OrderRequest(symbol="BTC/USDT", side="buy", type="limit", amount=D("0.01"),
                                                      price=D("49500")))
    server.fill(server.order_by_client_id(order.client_order_id))  # type: ignore[arg-type]
    async with live(server, db) as engine:
        report = engine.last_reconciliation[engine.account]
        assert report["settled"] == {order.id: "filled"}
        assert report["fills"] == {order.id: {"count": 1, "amount": "0.01"}}

    async with Engine.paper(db=tmp_path / "paper.sqlite") as paper:
        await paper.place_order(OrderRequest(symbol="BTC/USDT", side="buy", type="limit", amount=D("0.01"),
                                             price=D("45000")))
        report = await paper.reconcile()
        assert not (report["adopted"] or report["settled"] or report["fills"] or report["missing"] or report["error"])
