"""Native brackets and trailing stops through the engine over ccxt's real okx class and the OKX
loopback: the exchange keeps the exits (one TP/SL algo order) and the trailing stop
(move_order_stop); the core keeps the link, tracks them, and the halt cancels them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal as D
from pathlib import Path

import pytest

from core import Engine, ManualClock, OrderStatus, Settings
from core.events import Notice
from core.models import Order, OrderType
from core.venues.base import native_support

from .loopback.okx import CCXT_OPTIONS, LoopbackOkx

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

S = OrderStatus
BTC = "BTC/USDT"
INST = "BTC-USDT"
FAST = Settings(halt={"deadline_seconds": 5, "retry_initial_seconds": 0.01, "retry_max_seconds": 0.05},
                tracking={"websockets": False})


@pytest.fixture
async def server() -> AsyncIterator[LoopbackOkx]:
    # no fees: a spot buy pays OKX's fee in the base coin, which would leave dust after the exits
    async with LoopbackOkx(taker_fee=D(0), maker_fee=D(0)) as srv:
        yield srv


def live(server: LoopbackOkx, db: Path) -> Engine:
    return Engine.live("okx", api_key=server.api_key, secret=server.api_secret, password=server.passphrase, db=db,
                       api_url=server.base_url, options=dict(CCXT_OPTIONS), timeout_ms=2000, settings=FAST,
                       clock=ManualClock())


async def tick(engine: Engine) -> None:
    """One poll with every order and price due (the tracker polls on the engine's clock)."""
    engine.clock.advance(60)  # type: ignore[attr-defined]
    await engine.tick()


async def priced(engine: Engine) -> None:
    """Mark BTC/USDT from the first poll on (a bracket is valued at the last price)."""
    engine.venue._tracker.watch_prices([BTC])  # type: ignore[attr-defined]
    await tick(engine)


def leg(engine: Engine, contingent_id: str, role: str) -> Order:
    c = engine.get_contingent(contingent_id)
    assert c is not None and c.legs[role].orders, f"{role} of {contingent_id} has no order"
    return engine._orders[c.legs[role].orders[-1]]


def position(engine: Engine) -> D:
    return engine.ledger.signed_size(BTC)


def notices(stream: object, text: str) -> list[str]:
    return [e.text for e in stream.drain() if isinstance(e, Notice) and text in e.text]  # type: ignore[attr-defined]


# -- brackets -----------------------------------------------------------------------------------------


async def test_native_bracket_exits_live_at_the_exchange_and_take_profit_closes_it(server: LoopbackOkx,
                                                                                   db: Path) -> None:
    async with live(server, db) as engine:
        assert native_support(engine.venue) == {"bracket", "trailing"}
        await priced(engine)
        b = await engine.place_bracket_order(BTC, "buy", D("0.01"), stop_loss=D(49000), take_profit=D(52000))
        assert b.native
        entry, exits = leg(engine, b.id, "entry"), leg(engine, b.id, "exits")
        assert (entry.status, position(engine)) == (S.FILLED, D("0.01"))
        # the exchange holds one TP/SL algo order, sized to the fill, linked by the journaled client id
        [algo] = server.open_algos()
        assert (algo.ord_type, algo.side, algo.sz, algo.tp_trigger_px, algo.sl_trigger_px) == (
            "oco", "sell", D("0.01"), D(52000), D(49000))
        assert algo.algo_cl_ord_id == exits.client_order_id == b.legs["exits"].client_order_id
        assert server.count("POST", "/api/v5/trade/order") == 1  # the entry, exits attached
        # nothing is emulated in the core: no held trigger, no stop-loss / take-profit orders of its own
        active = await engine.get_active_orders()
        assert [o.id for o in active] == [exits.id] and not exits.emulated
        assert (exits.type, exits.stop_price, exits.amount, exits.reduce_only) == (OrderType.STOP, D(49000), D("0.01"), True)
        assert "take-profit 52000" in (exits.tag or "") and f"bracket {b.id}" in (exits.tag or "")
        assert engine.get_contingent(b.id).legs["stop_loss"].orders == []  # type: ignore[union-attr]
        assert not engine.venue._held.of_symbol(None)  # type: ignore[attr-defined]

        await tick(engine)
        assert exits.status is S.OPEN and exits.venue_order_id in (None, algo.algo_id)
        [tp_trade] = server.set_price(INST, "52000")  # take-profit fires: the whole algo order is done
        assert (algo.state, algo.actual_side, tp_trade.px) == ("effective", "tp", D(52000))
        await tick(engine)
        assert (exits.status, exits.filled, exits.average_price, exits.venue_order_id) == (
            S.FILLED, D("0.01"), D(52000), algo.algo_id)
        assert position(engine) == 0
        done = engine.get_contingent(b.id)
        assert done is not None and "position closed" in (done.done or "")
        assert server.open_algos() == [] and await engine.get_active_orders() == []


async def test_native_bracket_link_survives_restarts(server: LoopbackOkx, db: Path) -> None:
    async with live(server, db) as engine:
        await priced(engine)
        b = await engine.place_bracket_order(BTC, "buy", D("0.01"), stop_loss=D(49000), take_profit=D(52000))
        assert b.native
        [algo] = server.open_algos()  # the market entry filled: OKX holds the exits
        exits_id = leg(engine, b.id, "exits").id
    async with live(server, db) as engine:  # a first restart: the link and the exits are back
        await tick(engine)
        entry, exits = leg(engine, b.id, "entry"), leg(engine, b.id, "exits")
        assert (entry.status, position(engine)) == (S.FILLED, D("0.01"))
        assert exits.id == exits_id and exits.client_order_id == algo.algo_cl_ord_id and exits.status is S.OPEN
    async with live(server, db) as engine:  # a second one, then the stop-loss fires
        c = engine.get_contingent(b.id)
        assert c is not None and c.done is None and c.legs["exits"].orders == [exits_id]
        await tick(engine)
        server.set_price(INST, "48900")
        assert algo.actual_side == "sl"
        await tick(engine)
        exits = engine._orders[exits_id]
        assert (exits.status, exits.average_price, position(engine)) == (S.FILLED, D(48900), 0)
        assert "position closed" in (engine.get_contingent(b.id).done or "")  # type: ignore[union-attr]


async def test_a_resting_entry_is_bracketed_in_the_core_so_partial_fills_are_protected(
    server: LoopbackOkx, db: Path
) -> None:
    async with live(server, db) as engine:
        await priced(engine)
        b = await engine.place_bracket_order(BTC, "buy", D("0.01"), entry=D(49500), stop_loss=D(49000),
                                             take_profit=D(52000))
        assert not b.native and "exits" not in b.legs  # OKX would attach exits only on a complete fill
        assert leg(engine, b.id, "entry").status is S.OPEN and server.open_algos() == []


async def test_refused_native_bracket_falls_back_to_emulation_with_a_notice(server: LoopbackOkx, db: Path) -> None:
    server.refuse_algos = "TP/SL orders are not available for this instrument"
    async with live(server, db) as engine:
        await priced(engine)
        stream = engine.events()
        b = await engine.place_bracket_order(BTC, "buy", D("0.01"), stop_loss=D(49000), take_profit=D(52000))
        said = notices(stream, "emulated in the core instead")
        assert said and "refused the entry with its exits attached" in said[0]
        c = engine.get_contingent(b.id)
        assert c is not None and not c.native
        refused, entry = (engine._orders[oid] for oid in c.legs["entry"].orders)
        assert (refused.status, entry.status, position(engine)) == (S.REJECTED, S.FILLED, D("0.01"))
        sl, tp = leg(engine, b.id, "stop_loss"), leg(engine, b.id, "take_profit")
        assert sl.emulated and tp.emulated and server.algos == {}  # held in the core, as on any venue
        server.set_price(INST, "52000")
        await tick(engine)  # the core fires the take-profit and cancels the stop-loss
        await tick(engine)
        assert (tp.status, sl.status, position(engine)) == (S.FILLED, S.CANCELLED, 0)


# -- trailing stops ------------------------------------------------------------------------------------


async def test_native_trailing_stop_fires_at_the_callback_from_the_best_price(server: LoopbackOkx, db: Path) -> None:
    async with live(server, db) as engine:
        await priced(engine)
        await engine.place_market_order(BTC, "buy", D("0.01"))
        stop = await engine.place_trailing_stop(BTC, "sell", D("0.01"), trail_percent=D(2), activation_price=D(51000))
        assert (stop.status, stop.emulated, stop.type) == (S.OPEN, False, OrderType.STOP)
        [algo] = server.open_algos()
        assert (algo.ord_type, algo.callback_ratio, algo.active_px, algo.algo_cl_ord_id) == (
            "move_order_stop", D("0.02"), D(51000), stop.client_order_id)
        # not active below 51000; then best 52000, so it fires at 52000 * 0.98 = 50960 and not before
        for price in ("50500", "49000", "51000", "52000", "51500", "50961"):
            assert server.set_price(INST, price) == [], price
            await tick(engine)
        assert engine._orders[stop.id].status is S.OPEN and position(engine) == D("0.01")
        [trade] = server.set_price(INST, "50960")
        assert (trade.px, algo.state) == (D(50960), "effective")
        await tick(engine)
        fired = engine._orders[stop.id]
        assert (fired.status, fired.average_price, position(engine)) == (S.FILLED, D(50960), 0)
        c = next(c for c in engine._contingent._finished.values() if c.kind == "trailing")
        assert c.native and "filled" in (c.done or "")


async def test_refused_native_trailing_stop_is_emulated_with_a_notice(server: LoopbackOkx, db: Path) -> None:
    async with live(server, db) as engine:
        await priced(engine)
        await engine.place_market_order(BTC, "buy", D("0.01"))
        server.refuse_algos = "Trailing stops are not available"
        stream = engine.events()
        stop = await engine.place_trailing_stop(BTC, "sell", D("0.01"), trail_amount=D(500))
        said = notices(stream, "refused it natively")
        assert said and "emulated in the core instead" in said[0] and "not available" in said[0]
        assert stop.emulated and stop.status is S.OPEN and stop.stop_price == D(49500)
        assert server.algos == {}


# -- the halt --------------------------------------------------------------------------------------------


async def test_halt_cancels_algo_orders_and_reads_them_back(server: LoopbackOkx, db: Path) -> None:
    async with live(server, db) as engine:
        await priced(engine)
        await engine.place_market_order(BTC, "buy", D("0.01"))
        b = await engine.place_bracket_order(BTC, "buy", D("0.01"), stop_loss=D(49000), take_profit=D(52000))
        stop = await engine.place_trailing_stop(BTC, "sell", D("0.01"), trail_percent=D(1))
        assert len(server.open_algos()) == 2
        pending_reads = server.count("GET", "/api/v5/trade/orders-algo-pending")
        report = await engine.halt_trading("native halt")
        assert report.clean and report.accounts[0].verified, report.summary()
        assert server.open_algos() == [] and server.open_orders() == []
        assert server.count("POST", "/api/v5/trade/cancel-algos") == 2
        assert server.count("GET", "/api/v5/trade/orders-algo-pending") >= pending_reads + 2  # the read-back
        assert engine._orders[stop.id].status is S.CANCELLED
        assert leg(engine, b.id, "exits").status is S.CANCELLED
        assert position(engine) == D("0.02")  # cancelling is not flattening


async def test_halt_read_back_sees_algo_orders_it_did_not_place(server: LoopbackOkx, db: Path) -> None:
    async with live(server, db) as engine:
        await tick(engine)
        [placed] = server._place_algo({"instId": INST, "tdMode": "cash", "side": "sell", "ordType": "conditional",
                                       "sz": "0.01", "slTriggerPx": "40000", "slOrdPx": "-1"})  # another desk's
        report = await engine.halt_trading("native halt")
        assert not report.clean and not report.accounts[0].verified
        assert report.accounts[0].remaining == [f"external:algo{placed['algoId']}"]


async def test_sim_venue_keeps_emulating(db: Path) -> None:
    async with Engine.paper(db=db, clock=ManualClock()) as engine:
        assert native_support(engine.venue) == frozenset()
        await engine.tick()
        b = await engine.place_bracket_order(BTC, "buy", D("0.01"), stop_loss=D(1000), take_profit=D(10_000_000))
        assert not b.native and "exits" not in b.legs
