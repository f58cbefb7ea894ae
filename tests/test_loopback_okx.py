"""ccxt's real async ``okx`` class, and the engine over it, against the in-process loopback OKX."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import aiohttp
import ccxt.async_support as ccxt
import pytest

from core import Engine, ManualClock, OrderRequest, OrderStatus, Settings, TradingState
from core.errors import OrderRejected

from .loopback.okx import CCXT_OPTIONS, LoopbackOkx, make_ccxt_okx, okx_signature

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

D = Decimal
BTC = "BTC/USDT"
PLACE = ("POST", "/api/v5/trade/batch-orders")  # ccxt places a single order through the batch endpoint
# REST polling only: the loopbacks serve no websocket streams
FAST = Settings(halt={"deadline_seconds": 5, "retry_initial_seconds": 0.01, "retry_max_seconds": 0.05},
                tracking={"websockets": False})


@pytest.fixture
async def server() -> AsyncIterator[LoopbackOkx]:
    async with LoopbackOkx() as srv:
        yield srv


@pytest.fixture
async def exchange(server: LoopbackOkx) -> AsyncIterator[ccxt.okx]:
    ex = make_ccxt_okx(server)
    try:
        await ex.load_markets()
        yield ex
    finally:
        await ex.close()


def _dec(x: object) -> Decimal:
    return D(str(x))


# -- markets and wiring --------------------------------------------------------------------------------


async def test_point_at_rebases_okx_rest_and_markets_load_in_one_request(server: LoopbackOkx) -> None:
    ex = make_ccxt_okx(server)
    try:
        assert ex.urls["api"] == {"rest": server.base_url}  # OKX's {'rest': 'https://{hostname}'} shape
        markets = await ex.load_markets()
    finally:
        await ex.close()
    assert dict(server.requests) == {("GET", "/api/v5/public/instruments"): 1}
    assert set(markets) == {"BTC/USDT", "ETH/USDT"}
    btc = markets[BTC]
    assert (btc["id"], btc["spot"], btc["active"]) == ("BTC-USDT", True, True)
    assert btc["precision"] == {"amount": 0.00001, "price": 0.1}
    assert btc["limits"]["amount"]["min"] == 0.00001


# -- orders --------------------------------------------------------------------------------------------


async def test_limit_order_lifecycle_by_ord_id_and_cl_ord_id(server: LoopbackOkx, exchange: ccxt.okx) -> None:
    placed = await exchange.create_order(BTC, "limit", "buy", 0.01, 49000, {"clientOrderId": "desk1"})
    assert placed["id"] and placed["clientOrderId"] == "desk1" and placed["status"] is None  # OKX acks ids only
    assert server.count(*PLACE) == 1
    assert server.wallet("USDT").frozen == D(490)

    by_id = await exchange.fetch_order(placed["id"], BTC)
    by_cid = await exchange.fetch_order("", BTC, {"clientOrderId": "desk1"})
    assert by_id["id"] == by_cid["id"] == placed["id"]
    assert (by_id["status"], by_id["price"], _dec(by_id["amount"])) == ("open", 49000, D("0.01"))
    assert [o["clientOrderId"] for o in await exchange.fetch_open_orders()] == ["desk1"]

    await exchange.cancel_order("", BTC, {"clientOrderId": "desk1"})
    assert (await exchange.fetch_order(placed["id"], BTC))["status"] == "canceled"
    assert await exchange.fetch_open_orders(BTC) == []
    assert server.wallet("USDT").frozen == 0 and server.wallet("USDT").avail == D(1_000_000)
    with pytest.raises(ccxt.OrderNotFound):  # 51401: already cancelled
        await exchange.cancel_order(placed["id"], BTC)
    with pytest.raises(ccxt.OrderNotFound):  # 51603
        await exchange.fetch_order("", BTC, {"clientOrderId": "neversent"})


async def test_refusals_come_back_as_ccxt_errors(server: LoopbackOkx, exchange: ccxt.okx) -> None:
    await exchange.create_order(BTC, "limit", "buy", 0.01, 49000, {"clientOrderId": "dup"})
    with pytest.raises(ccxt.InvalidOrder, match="51016"):
        await exchange.create_order(BTC, "limit", "buy", 0.01, 48000, {"clientOrderId": "dup"})
    with pytest.raises(ccxt.InsufficientFunds, match="51008"):
        await exchange.create_order(BTC, "limit", "buy", 100, 49000)
    with pytest.raises(ccxt.InvalidOrder, match="51121"):  # bypass ccxt's rounding to reach the lot check
        await exchange.private_post_trade_order({"instId": "BTC-USDT", "tdMode": "cash", "side": "buy",
                                                 "ordType": "limit", "sz": "0.000015", "px": "49000"})
    assert len(server.open_orders()) == 1


async def test_market_orders_fill_with_okx_fees(server: LoopbackOkx, exchange: ccxt.okx) -> None:
    server.set_price("BTC-USDT", D("51000"))
    buy = await exchange.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "mkt1"})
    done = await exchange.fetch_order(buy["id"], BTC)
    assert done["status"] == "closed" and _dec(done["filled"]) == D("0.01") and _dec(done["average"]) == D(51000)
    assert done["fee"] == {"cost": 0.00001, "currency": "BTC"}  # OKX spot: a buy pays in the base
    sell = await exchange.create_order(BTC, "market", "sell", 0.02, None, {"clientOrderId": "mkt2"})
    [t] = await exchange.fetch_my_trades(BTC, None, None, {"ordId": sell["id"]})
    assert (t["order"], t["side"], t["takerOrMaker"]) == (sell["id"], "sell", "taker")
    assert t["fee"]["currency"] == "USDT" and _dec(t["fee"]["cost"]) == D("1.02")  # ...a sell in the quote
    assert server.wallet("BTC").avail == D("10") + D("0.01") - D("0.00001") - D("0.02")
    assert server.wallet("USDT").avail == D(1_000_000) - D(510) + D(1020) - D("1.02")
    balance = await exchange.fetch_balance()
    assert _dec(balance["USDT"]["free"]) == server.wallet("USDT").avail


async def test_resting_limit_fills_as_maker_when_the_price_crosses(server: LoopbackOkx, exchange: ccxt.okx) -> None:
    sell = await exchange.create_order("ETH/USDT", "limit", "sell", 1.5, 3100, {"clientOrderId": "s1"})
    assert server.set_price("ETH-USDT", "3099.99") == []
    [trade] = server.set_price("ETH-USDT", "3120")
    assert (trade.px, trade.sz, trade.maker) == (D(3100), D("1.5"), True)
    [t] = await exchange.fetch_my_trades("ETH/USDT")
    assert t["order"] == sell["id"] and t["takerOrMaker"] == "maker"
    assert _dec(t["fee"]["cost"]) == D("3.72")  # 0.08% maker of 4,650 USDT


# -- authentication ------------------------------------------------------------------------------------


async def test_wrong_secret_key_or_passphrase_is_an_authentication_error(server: LoopbackOkx) -> None:
    for kwargs in ({"secret": "not-the-secret"}, {"api_key": "not-the-key"}, {"password": "not-the-phrase"}):
        ex = make_ccxt_okx(server, **kwargs)
        try:
            await ex.load_markets()  # public: no keys needed
            with pytest.raises(ccxt.AuthenticationError):
                await ex.fetch_balance()
            with pytest.raises(ccxt.AuthenticationError):
                await ex.create_order(BTC, "limit", "buy", 0.01, 49000)
        finally:
            await ex.close()
    assert server.orders == {}


async def test_clock_skew_is_invalid_nonce(server: LoopbackOkx, exchange: ccxt.okx) -> None:
    server.time_offset_ms = 60_000
    with pytest.raises(ccxt.InvalidNonce):
        await exchange.fetch_balance()


async def test_signature_covers_timestamp_method_path_query_and_body(server: LoopbackOkx) -> None:
    ts = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def headers(prehash: str) -> dict[str, str]:
        return {"OK-ACCESS-KEY": server.api_key, "OK-ACCESS-PASSPHRASE": server.passphrase, "OK-ACCESS-TIMESTAMP": ts,
                "OK-ACCESS-SIGN": okx_signature(server.api_secret, prehash), "Content-Type": "application/json"}

    query = "/api/v5/account/balance?ccy=BTC"
    body = json.dumps({"instId": "BTC-USDT", "tdMode": "cash", "side": "sell", "ordType": "limit", "sz": "0.01",
                       "px": "52000", "clOrdId": "byhand1"})
    async with aiohttp.ClientSession() as http:
        async with http.get(server.base_url + query, headers=headers(ts + "GET" + "/api/v5/account/balance")) as r:
            assert (r.status, (await r.json())["code"]) == (401, "50113")  # the query is part of what is signed
        async with http.get(server.base_url + query, headers=headers(ts + "GET" + query)) as r:
            answer = await r.json()
            assert answer["code"] == "0" and [d["ccy"] for d in answer["data"][0]["details"]] == ["BTC"]
        url = server.base_url + "/api/v5/trade/order"
        async with http.post(url, data=body, headers=headers(ts + "POST" + "/api/v5/trade/order" + "{}")) as r:
            assert (await r.json())["code"] == "50113"  # so is the body
        async with http.post(url, data=body, headers=headers(ts + "POST" + "/api/v5/trade/order" + body)) as r:
            assert (await r.json())["data"][0]["sCode"] == "0"
    assert server.order_by_client_id("byhand1") is not None


# -- fault dials ---------------------------------------------------------------------------------------


async def test_429_and_503_then_recovery(server: LoopbackOkx, exchange: ccxt.okx) -> None:
    server.status_429_next_n = 1
    with pytest.raises(ccxt.RateLimitExceeded):  # 50011
        await exchange.fetch_balance()
    server.status_5xx_next_n = 1
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await exchange.create_order(BTC, "limit", "buy", 0.01, 49000, {"clientOrderId": "n1"})
    assert server.orders == {}  # a 5xx before the matching engine: nothing booked
    await exchange.create_order(BTC, "limit", "buy", 0.01, 49000, {"clientOrderId": "n1"})
    assert len(server.open_orders()) == 1


async def test_dropped_answer_times_out_but_the_order_is_booked(server: LoopbackOkx, exchange: ccxt.okx) -> None:
    server.drop_next_response_after_accept = True
    exchange.timeout = 300
    started = time.monotonic()
    with pytest.raises(ccxt.RequestTimeout):
        await exchange.create_order(BTC, "limit", "buy", 0.01, 49000, {"clientOrderId": "lost1"})
    assert time.monotonic() - started < 2
    found = await exchange.fetch_order("", BTC, {"clientOrderId": "lost1"})
    assert found["status"] == "open" and server.count(*PLACE) == 1


# -- the engine over OKX -------------------------------------------------------------------------------


def live(server: LoopbackOkx, db: Path, *, secret: str | None = None, timeout_ms: int = 2000) -> Engine:
    return Engine.live(
        "okx", api_key=server.api_key, secret=secret or server.api_secret, password=server.passphrase, db=db,
        api_url=server.base_url, options=dict(CCXT_OPTIONS), timeout_ms=timeout_ms, settings=FAST,
        clock=ManualClock(),
    )


async def tick(engine: Engine) -> None:
    """One poll with every order and price due (the tracker polls on the engine's clock)."""
    engine.clock.advance(60)  # type: ignore[attr-defined]
    await engine.tick()


def limit(price: str, amount: str = "0.01", side: str = "buy") -> OrderRequest:
    return OrderRequest(symbol=BTC, side=side, type="limit", amount=D(amount), price=D(price))  # type: ignore[arg-type]


async def test_engine_place_lookup_cancel_round_trip(server: LoopbackOkx, db: Path) -> None:
    async with live(server, db) as engine:
        market = engine.markets()[BTC]
        assert (market.tick_size, market.lot_size) == (D("0.1"), D("0.00001"))
        order = await engine.place_order(limit("49000"))
        assert order.status is OrderStatus.OPEN and order.venue_order_id
        on_server = server.order_by_client_id(order.client_order_id)
        assert on_server is not None and on_server.ord_id == order.venue_order_id
        assert [o.id for o in await engine.get_active_orders()] == [order.id]
        cancelled = await engine.cancel_order(order.id)
        assert cancelled.status is OrderStatus.CANCELLED and server.open_orders() == []


async def test_engine_market_orders_book_exact_fills_and_fees(server: LoopbackOkx, db: Path) -> None:
    async with live(server, db) as engine:
        sell = await engine.place_order(OrderRequest(symbol=BTC, side="sell", type="market", amount=D("0.02")))
        assert sell.status is OrderStatus.FILLED and sell.average_price == D(50000)  # known at once: looked up
        assert (sell.fee, sell.fee_currency) == (D("1"), "USDT")
        buy = await engine.place_order(OrderRequest(symbol=BTC, side="buy", type="market", amount=D("0.01")))
        # OKX took 0.00001 BTC: booked at its value in the quote, and kept out of the position
        assert buy.status is OrderStatus.FILLED and (buy.fee, buy.fee_currency) == (D("0.5"), "USDT")
        fills = (await engine.journal.load()).fills  # type: ignore[union-attr]
        assert [(f.fee, f.base_fee) for f in fills] == [(D("1"), 0), (D("0.5"), D("0.00001"))]
        assert server.count(*PLACE) == 2


async def test_engine_tracks_a_resting_fill_by_polling(server: LoopbackOkx, db: Path) -> None:
    async with live(server, db) as engine:
        order = await engine.place_order(limit("49900"))
        server.set_price("BTC-USDT", "49800")
        await tick(engine)
        filled = await engine.get_order_by_id(order.id)
        assert filled is not None and filled.status is OrderStatus.FILLED and filled.average_price == D(49900)
        # 0.08% maker, taken in the base (0.000008 BTC): booked at its quote value
        assert (filled.fee, filled.fee_currency) == (D("0.3992"), "USDT")
        [pos] = await engine.get_positions()
        assert pos.size == D("0.01") - D("0.000008") == server.wallet("BTC").total - D(10)


async def test_engine_lost_answer_gives_exactly_one_order(server: LoopbackOkx, db: Path) -> None:
    async with live(server, db, timeout_ms=300) as engine:
        server.drop_next_response_after_accept = True
        order = await engine.place_order(limit("49000"))
        assert order.status is OrderStatus.OPEN  # settled by its clOrdId, not resent
        assert server.count(*PLACE) == 1 and len(server.open_orders()) == 1
        journal = await engine.journal.load()  # type: ignore[union-attr]
        assert [(o.id, o.status) for o in journal.orders] == [(order.id, OrderStatus.OPEN)]


async def test_engine_wrong_secret_is_a_clear_message_and_nothing_is_sent(server: LoopbackOkx, db: Path) -> None:
    engine = live(server, db, secret="not-the-secret")
    with pytest.raises(OrderRejected, match="okx refused the API key") as err:
        await engine.start()
    assert "not-the-secret" not in str(err.value)
    assert server.count(*PLACE) == 0 and server.orders == {}
    async with Engine.paper(db=db, clock=ManualClock()) as reopened:  # the journal holds no order
        assert await reopened.get_orders() == []


async def test_engine_halt_cancels_order_by_order(server: LoopbackOkx, db: Path) -> None:
    async with live(server, db) as engine:
        for p in ("49000", "49100"):
            await engine.place_order(limit(p))
        server.status_429_next_n = 1
        report = await engine.halt_trading("okx halt")
        assert report.clean, report.summary()
        assert server.open_orders() == [] and engine.trading_state is TradingState.HALTED
        assert server.count("POST", "/api/v5/trade/cancel-order") >= 2  # OKX has no cancel-all


async def test_engine_emulates_stops_on_okx(server: LoopbackOkx, db: Path) -> None:
    # OKX keeps triggers in its algo-order book, which the tracker does not follow: held here
    async with live(server, db) as engine:
        stop = await engine.place_order(OrderRequest(symbol=BTC, side="sell", type="stop", amount=D("0.01"),  # type: ignore[arg-type]
                                                     stop_price=D(49000)))
        assert stop.status is OrderStatus.OPEN and stop.emulated and server.orders == {}
        server.set_price("BTC-USDT", "48900")
        await tick(engine)
        done = await engine.get_order_by_id(stop.id)
        assert done is not None and done.status is OrderStatus.FILLED and done.average_price == D(48900)
        assert [o.cl_ord_id for o in server.orders.values()] == [stop.client_order_id]
        assert server.count("POST", "/api/v5/trade/order-algo") == 0


async def test_engine_finds_all_trades_of_its_order_among_more_than_a_page(server: LoopbackOkx, db: Path) -> None:
    async with live(server, db) as engine:
        order = await engine.place_order(limit("49000"))
        ours = server.order_by_client_id(order.client_order_id)
        assert ours is not None
        server.fill(ours, "0.004")
        server.fill(ours, "0.006")
        other = make_ccxt_okx(server)  # another desk trades the same instrument a lot since
        try:
            await other.load_markets()
            placed = await other.create_order(BTC, "limit", "sell", 1, 52000, {"clientOrderId": "busy1"})
        finally:
            await other.close()
        for _ in range(120):
            server.fill(server.orders[placed["id"]], "0.001")
        assert len(server.trades) == 122  # OKX pages 100 at most: our two are not among the latest
        await tick(engine)
        done = await engine.get_order_by_id(order.id)
        assert done is not None and done.status is OrderStatus.FILLED and done.filled == D("0.01")
        fills = [f for f in (await engine.journal.load()).fills if f.order_id == order.id]  # type: ignore[union-attr]
        assert sorted(f.amount for f in fills) == [D("0.004"), D("0.006")]
        reads = [q for m, p, q in server.request_log if p.startswith("/api/v5/trade/fills")]
        assert reads and all(f"ordId={ours.ord_id}" in q for q in reads)  # asked for this order's trades


async def test_unresolved_order_seen_resting_settles_at_once_while_lookups_are_rate_limited(
        server: LoopbackOkx, db: Path) -> None:
    async with live(server, db) as engine:
        venue = engine.venue
        venue._retry_deadline = 0  # type: ignore[attr-defined]  # one attempt per lookup: no wall-clock waits
        lookups = 0

        async def rate_limited(*args: object, **kwargs: object) -> None:
            nonlocal lookups
            lookups += 1
            raise ccxt.RateLimitExceeded('okx {"code":"50011","msg":"Too Many Requests"}')

        venue._ex.fetch_order = rate_limited  # type: ignore[attr-defined]
        server.drop_next_response_after_accept, server.drop_mode = True, "reset"
        order = await engine.place_order(limit("49000"))
        assert order.status is OrderStatus.UNRESOLVED and lookups == 1  # booked at OKX, the answer lost
        await tick(engine)  # the open-orders read of the symbol finds it: no lookup needed
        found = await engine.get_order_by_id(order.id)
        assert found is not None and found.status is OrderStatus.OPEN and lookups == 1
        assert found.venue_order_id == server.order_by_client_id(order.client_order_id).ord_id  # type: ignore[union-attr]
