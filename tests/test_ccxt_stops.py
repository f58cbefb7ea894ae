"""Stop, stop-limit and take-profit orders through the engine over ccxt's real binance class:
native where the market lists the type, emulated in the core where it does not."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import ccxt.async_support as ccxt
import pytest

from core import Engine, ManualClock, OrderRequest, OrderStatus, Settings
from core.models import Order, OrderType, Side
from core.venues.emulated_triggers import native_trigger_supported, would_trigger

from .conftest import on_clock
from .loopback.binance import CCXT_OPTIONS, DEFAULT_MARKETS, LoopbackBinance, make_ccxt_binance
from .loopback.common import CcxtRequests

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# REST polling only: the loopbacks serve no websocket streams
FAST = Settings(halt={"deadline_seconds": 5, "retry_initial_seconds": 0.01, "retry_max_seconds": 0.05},
                tracking={"websockets": False})
ORDER = ("POST", "/api/v3/order")
PLAIN_TYPES = ("LIMIT", "LIMIT_MAKER", "MARKET")  # what Binance lists for a market without triggers


def live(server: LoopbackBinance, db: Path, *, timeout_ms: int = 2000) -> Engine:
    return Engine.live(
        "binance", api_key=server.api_key, secret=server.api_secret, db=db, api_url=server.base_url,
        options=dict(CCXT_OPTIONS), timeout_ms=timeout_ms, settings=FAST, clock=ManualClock(),
    )


async def tick(engine: Engine) -> None:
    """One poll with every order and price due (the tracker polls on the engine's clock)."""
    engine.clock.advance(60)  # type: ignore[attr-defined]
    await engine.tick()


@pytest.fixture
async def server() -> AsyncIterator[LoopbackBinance]:
    async with LoopbackBinance() as srv:
        yield srv


@pytest.fixture
async def plain() -> AsyncIterator[LoopbackBinance]:
    """A Binance whose markets take no trigger orders: the engine has to emulate them."""
    markets = [dataclasses.replace(m, order_types=PLAIN_TYPES) for m in DEFAULT_MARKETS]
    async with LoopbackBinance(markets=markets) as srv:
        yield srv


def trigger(kind: str, side: str, stop: str, price: str | None = None, amount: str = "0.01") -> OrderRequest:
    return OrderRequest(symbol="BTC/USDT", side=side, type=kind, amount=D(amount), stop_price=D(stop),  # type: ignore[arg-type]
                        price=D(price) if price else None)


# -- the rule -----------------------------------------------------------------------------------------


def test_trigger_direction_and_native_rule() -> None:
    assert would_trigger(OrderType.STOP, Side.SELL, D(49000), D(49000))
    assert not would_trigger(OrderType.STOP, Side.SELL, D(49000), D("49000.1"))
    assert would_trigger(OrderType.STOP_LIMIT, Side.BUY, D(51000), D(51001))
    assert would_trigger(OrderType.TAKE_PROFIT, Side.SELL, D(51000), D(51000))
    assert not would_trigger(OrderType.TAKE_PROFIT, Side.BUY, D(49000), D("49000.1"))

    def order(kind: OrderType, price: str | None) -> Order:
        now = datetime.now(UTC)
        return Order(id="x", client_order_id="x", symbol="BTC/USDT", side=Side.SELL, type=kind, amount=D(1),
                     price=D(price) if price else None, stop_price=D(1), created_at=now, updated_at=now)

    listed = {"info": {"orderTypes": ["LIMIT", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT"]}}
    assert native_trigger_supported(listed, order(OrderType.STOP_LIMIT, "1"))
    assert native_trigger_supported(listed, order(OrderType.TAKE_PROFIT, None))
    assert not native_trigger_supported(listed, order(OrderType.STOP, None))  # STOP_LOSS not listed
    assert not native_trigger_supported(listed, order(OrderType.TAKE_PROFIT, "1"))  # nor TAKE_PROFIT_LIMIT
    assert not native_trigger_supported({"info": {}}, order(OrderType.STOP, None))  # OKX-style: algo book


# -- the loopback's trigger orders, through ccxt alone ------------------------------------------------


async def test_loopback_trigger_orders_wait_then_work(server: LoopbackBinance, plain: LoopbackBinance) -> None:
    ex = make_ccxt_binance(server)
    bare = make_ccxt_binance(plain)
    try:
        await ex.load_markets()
        placed = await ex.create_order("BTC/USDT", "limit", "buy", 0.01, 51100, {"stopLossPrice": 51000})
        assert (placed["info"]["type"], placed["triggerPrice"], placed["info"]["workingTime"]) == (
            "STOP_LOSS_LIMIT", 51000, -1)
        assert server.balance("USDT").locked == D("511.511")  # the limit's cost and commission, held
        assert server.set_price("BTCUSDT", "50999.9") == []
        [trade] = server.set_price("BTCUSDT", "51050")  # triggered: a buy limit at 51100 crosses 51050
        assert (trade.price, trade.is_maker) == (D(51050), False)
        done = await ex.fetch_order(placed["id"], "BTC/USDT")
        assert done["status"] == "closed" and done["info"]["isWorking"] is True
        await bare.load_markets()
        with pytest.raises(ccxt.InvalidOrder, match="triggerPrice parameter is not allowed"):
            await bare.create_order("BTC/USDT", "market", "sell", 0.01, None, {"stopLossPrice": 49000})
        assert plain.count(*ORDER) == 0  # refused by ccxt itself: the market does not list the type
    finally:
        await ex.close()
        await bare.close()


# -- native -------------------------------------------------------------------------------------------


async def test_native_stop_limit_rests_at_the_exchange_triggers_and_fills(server: LoopbackBinance, db: Path) -> None:
    async with live(server, db) as engine:
        order = await engine.place_order(trigger("stop_limit", "sell", "49000", "48900"))
        assert order.status is OrderStatus.OPEN and not order.emulated
        sent = server.order_by_client_id(order.client_order_id)
        assert sent is not None and (sent.type, sent.stop_price, sent.price) == ("STOP_LOSS_LIMIT", D(49000), D(48900))
        assert not sent.is_working
        server.set_price("BTCUSDT", "49100")  # not yet
        await tick(engine)
        assert (await engine.get_order_by_id(order.id)).status is OrderStatus.OPEN  # type: ignore[union-attr]
        server.set_price("BTCUSDT", "48950")  # through the trigger, above the limit: fills as taker there
        await tick(engine)
        done = await engine.get_order_by_id(order.id)
        assert done is not None and done.status is OrderStatus.FILLED
        assert (done.average_price, done.fee, done.fee_currency) == (D(48950), D("0.4895"), "USDT")
        assert server.count(*ORDER) == 1


async def test_native_take_profit_market_and_limit(server: LoopbackBinance, db: Path) -> None:
    async with live(server, db) as engine:
        tp = await engine.place_order(trigger("take_profit", "sell", "51000"))
        tp_limit = await engine.place_order(trigger("take_profit", "sell", "52000", "52100"))
        types = {o.client_order_id: o.type for o in server.open_orders()}
        assert types == {tp.client_order_id: "TAKE_PROFIT", tp_limit.client_order_id: "TAKE_PROFIT_LIMIT"}
        server.set_price("BTCUSDT", "51500")
        await tick(engine)
        assert (await engine.get_order_by_id(tp.id)).average_price == D(51500)  # type: ignore[union-attr]
        server.set_price("BTCUSDT", "52050")  # triggered, but the limit 52100 is above: it rests
        await tick(engine)
        assert (await engine.get_order_by_id(tp_limit.id)).status is OrderStatus.OPEN  # type: ignore[union-attr]
        server.set_price("BTCUSDT", "52100")
        await tick(engine)
        filled = await engine.get_order_by_id(tp_limit.id)
        assert filled is not None and filled.status is OrderStatus.FILLED and filled.average_price == D(52100)


async def test_native_stop_cancel_and_one_that_would_fire_at_once(server: LoopbackBinance, db: Path) -> None:
    async with live(server, db) as engine:
        stop = await engine.place_order(trigger("stop", "sell", "49000"))
        assert server.order_by_client_id(stop.client_order_id).type == "STOP_LOSS"  # type: ignore[union-attr]
        cancelled = await engine.cancel_order(stop.id)
        assert cancelled.status is OrderStatus.CANCELLED and server.open_orders() == []
        server.set_price("BTCUSDT", "48000")  # the engine still values BTC at 50000: its risk check passes
        late = await engine.place_order(trigger("stop", "sell", "49000"))
        assert late.status is OrderStatus.REJECTED and "would trigger immediately" in (late.error or "")
        assert server.count(*ORDER) == 2  # refused by the exchange itself


# -- emulated -----------------------------------------------------------------------------------------


async def test_emulated_stop_is_held_then_sent_as_market_when_the_price_reaches_it(plain: LoopbackBinance,
                                                                                  db: Path) -> None:
    async with live(plain, db) as engine:
        order = await engine.place_order(trigger("stop", "sell", "49000"))
        assert order.status is OrderStatus.OPEN and order.emulated
        assert plain.count(*ORDER) == 0 and plain.orders == {}  # held in the core: nothing sent
        plain.set_price("BTCUSDT", "49000.1")
        await tick(engine)
        assert plain.count(*ORDER) == 0
        plain.set_price("BTCUSDT", "48800")
        await tick(engine)
        done = await engine.get_order_by_id(order.id)
        assert done is not None and done.status is OrderStatus.FILLED and done.emulated
        assert (done.average_price, done.fee) == (D(48800), D("0.488"))
        [sent] = plain.orders.values()
        assert (sent.client_order_id, sent.type, sent.side) == (order.client_order_id, "MARKET", "SELL")
        kinds = [e["kind"] for e in await engine.journal.events() if e.get("order_id") == order.id]  # type: ignore[union-attr]
        assert kinds.index("order_triggered") < kinds.index("order_filled")
        await tick(engine)
        assert plain.count(*ORDER) == 1  # sent once


async def test_emulated_stop_limit_rests_after_its_trigger_then_fills(plain: LoopbackBinance, db: Path) -> None:
    async with live(plain, db) as engine:
        order = await engine.place_order(trigger("stop_limit", "buy", "51000", "50900"))
        plain.set_price("BTCUSDT", "51100")  # triggered; a buy limit at 50900 does not cross 51100
        await tick(engine)
        working = await engine.get_order_by_id(order.id)
        assert working is not None and working.status is OrderStatus.TRIGGERED and working.venue_order_id
        [sent] = plain.open_orders()
        assert (sent.client_order_id, sent.type, sent.price) == (order.client_order_id, "LIMIT", D(50900))
        plain.set_price("BTCUSDT", "50850")
        await tick(engine)
        filled = await engine.get_order_by_id(order.id)
        assert filled is not None and filled.status is OrderStatus.FILLED and filled.average_price == D(50900)
        assert (await engine.get_positions())[0].size == D("0.01")


async def test_cancelling_an_emulated_order_is_local(plain: LoopbackBinance, db: Path) -> None:
    async with live(plain, db) as engine:
        order = await engine.place_order(trigger("take_profit", "sell", "51000"))
        cancelled = await engine.cancel_order(order.id)
        assert cancelled.status is OrderStatus.CANCELLED
        plain.set_price("BTCUSDT", "52000")
        await tick(engine)
        assert plain.count(*ORDER) == 0 and plain.count("DELETE", "/api/v3/order") == 0


async def test_emulated_order_that_would_fire_at_once_is_refused(plain: LoopbackBinance, db: Path) -> None:
    async with live(plain, db) as engine:
        await engine.place_order(trigger("stop", "sell", "49000"))  # the engine learns the price: 50000
        plain.set_price("BTCUSDT", "52000")  # the engine still values BTC at 50000: its risk check passes
        refused = await engine.place_order(trigger("take_profit", "sell", "51000"))
        assert refused.status is OrderStatus.REJECTED and "trigger 51000 would fire at once (last price 52000" in (refused.error or "")
        assert plain.count(*ORDER) == 0


async def test_halt_cancels_held_orders_without_sending_them(plain: LoopbackBinance, db: Path) -> None:
    async with live(plain, db) as engine:
        held = await engine.place_order(trigger("stop", "sell", "49000"))
        resting = await engine.place_order(OrderRequest(symbol="BTC/USDT", side="buy", type="limit", amount=D("0.01"),  # type: ignore[arg-type]
                                                        price=D(48000)))
        report = await engine.halt_trading("end of day")
        assert report.clean, report.summary()
        assert (await engine.get_order_by_id(held.id)).status is OrderStatus.CANCELLED  # type: ignore[union-attr]
        assert (await engine.get_order_by_id(resting.id)).status is OrderStatus.CANCELLED  # type: ignore[union-attr]
        plain.set_price("BTCUSDT", "48500")
        await tick(engine)
        assert plain.count(*ORDER) == 1 and plain.open_orders() == []  # only the limit was ever sent


async def test_a_lost_answer_on_trigger_is_settled_by_client_id_not_resent(plain: LoopbackBinance, db: Path) -> None:
    async with live(plain, db, timeout_ms=300) as engine:
        order = await engine.place_order(trigger("stop", "sell", "49000"))
        plain.drop_next_response_after_accept = True
        plain.set_price("BTCUSDT", "48900")
        await tick(engine)
        pending = await engine.get_order_by_id(order.id)
        assert pending is not None and pending.status is OrderStatus.TRIGGERED  # sent, answer lost
        await tick(engine)
        settled = await engine.get_order_by_id(order.id)
        assert settled is not None and settled.status is OrderStatus.FILLED and settled.filled == D("0.01")
        assert plain.count(*ORDER) == 1 and len(plain.orders) == 1


async def test_held_orders_survive_a_restart_and_are_never_sent_twice(plain: LoopbackBinance, db: Path) -> None:
    async with live(plain, db) as engine:
        kept = await engine.place_order(trigger("stop", "sell", "49000"))
        sent_before_crash = await engine.place_order(trigger("take_profit", "sell", "51000"))
    # as if the take-profit had fired and been sent just before the engine died, unjournaled
    other = make_ccxt_binance(plain)
    try:
        await other.load_markets()
        await other.create_order("BTC/USDT", "market", "sell", 0.01, None,
                                 {"clientOrderId": sent_before_crash.client_order_id})
    finally:
        await other.close()
    async with live(plain, db) as engine:
        found = await engine.get_order_by_id(sent_before_crash.id)
        assert found is not None and found.status is OrderStatus.FILLED  # the restart's lookup found it
        still = await engine.get_order_by_id(kept.id)
        assert still is not None and still.status is OrderStatus.OPEN and still.emulated
        plain.set_price("BTCUSDT", "52000")  # the take-profit's trigger again: nothing more is sent
        await tick(engine)
        assert plain.count(*ORDER) == 1
        plain.set_price("BTCUSDT", "48000")  # the stop, held across the restart, fires
        await tick(engine)
        assert (await engine.get_order_by_id(kept.id)).status is OrderStatus.FILLED  # type: ignore[union-attr]
        assert plain.count(*ORDER) == 2


async def test_a_venue_fires_no_held_stop_while_trading_is_halted(plain: LoopbackBinance, db: Path) -> None:
    async with live(plain, db) as engine:
        held = await engine.place_order(trigger("stop", "sell", "49000"))
        engine.venue.halted = True  # as the engine sets it: a halt that could not reach this stop
        plain.set_price("BTCUSDT", "48800")
        await tick(engine)
        assert plain.count(*ORDER) == 0
        assert (await engine.get_order_by_id(held.id)).status is OrderStatus.OPEN  # type: ignore[union-attr]
        engine.venue.halted = False
        await tick(engine)  # fires now
        assert plain.count(*ORDER) == 1


async def test_a_halt_whose_cancel_all_is_refused_still_cancels_the_held_stop(plain: LoopbackBinance, db: Path,
                                                                            ccxt_requests: CcxtRequests) -> None:
    """The exchange refuses the halt's cancel-all (a 429 whose Retry-After, 30 s, lies past the 5 s
    deadline: not retried). The stop CcxtVenue holds is cancelled where it is held, without asking
    the exchange again; the halt is clean and the stop never fires."""
    async with live(plain, db) as engine:
        held = await engine.place_order(trigger("stop", "sell", "49000"))
        assert held.emulated and plain.count(*ORDER) == 0
        btc = plain.balance("BTC").total
        plain.retry_after_seconds = 30
        plain.status_429_next_n = 1
        # the halt pauses on the engine's clock before it reads the book again: the clock moves
        # only while no ccxt request is waiting (in ccxt's wall-clock rate limiter, on its socket)
        report = await on_clock(engine.clock, engine.halt_trading("HALT key"), engine,  # type: ignore[arg-type]
                                settle=ccxt_requests.settle)
        assert plain.status_429_next_n == 0  # the cancel-all was refused...
        assert plain.count("DELETE", "/api/v3/openOrders") == 1  # ...and not sent again inside its Retry-After
        assert report.clean, report.summary()
        assert report.accounts[0].cancelled == [held.id] and report.accounts[0].failed == {}
        assert (await engine.get_order_by_id(held.id)).status is OrderStatus.CANCELLED  # type: ignore[union-attr]
        plain.set_price("BTCUSDT", "48900")  # through the stop
        for _ in range(3):
            await tick(engine)
        assert plain.count(*ORDER) == 0 and plain.orders == {}  # nothing was ever sent
        assert plain.balance("BTC").total == btc
        assert (await engine.get_order_by_id(held.id)).status is OrderStatus.CANCELLED  # type: ignore[union-attr]
