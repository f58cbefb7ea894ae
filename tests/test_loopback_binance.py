"""ccxt's real async ``binance`` class against the in-process loopback Binance spot server."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import ccxt.async_support as ccxt
import pytest

from tests.loopback.binance import (
    CCXT_OPTIONS,
    DEFAULT_MARKETS,
    LoopbackBinance,
    MarketSpec,
    binance_signature,
    make_ccxt_binance,
    point_ccxt_at,
)

D = Decimal
BTC = "BTC/USDT"
ORDER = ("POST", "/api/v3/order")


@pytest.fixture
async def server() -> AsyncIterator[LoopbackBinance]:
    srv = LoopbackBinance()
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def exchange(server: LoopbackBinance) -> AsyncIterator[ccxt.binance]:
    ex = make_ccxt_binance(server)
    try:
        await ex.load_markets()
        yield ex
    finally:
        await ex.close()


def _dec(x: object) -> Decimal:
    return D(str(x))


# -- markets -----------------------------------------------------------------------------------------


async def test_load_markets_is_one_exchange_info_with_precision_and_limits(server: LoopbackBinance) -> None:
    # the explicit wiring, spelled out: the real class, its urls['api'] rebased, the options
    ex = ccxt.binance({"apiKey": server.api_key, "secret": server.api_secret, "enableRateLimit": False,
                       "timeout_on_exit": 0, "options": dict(CCXT_OPTIONS)})
    ex.urls["api"]["public"] = server.base_url + "/api/v3"
    ex.urls["api"]["private"] = server.base_url + "/api/v3"
    point_ccxt_at(ex, server.base_url)  # and everything else too, so nothing leaks to binance.com
    assert all(v.startswith(server.base_url) for v in ex.urls["api"].values())
    try:
        markets = await ex.load_markets()
    finally:
        await ex.close()
    assert dict(server.requests) == {("GET", "/api/v3/exchangeInfo"): 1}
    assert set(markets) == {"BTC/USDT", "ETH/USDT"}
    btc = markets[BTC]
    assert (btc["id"], btc["spot"], btc["active"]) == ("BTCUSDT", True, True)
    assert btc["precision"]["price"] == 0.1 and btc["precision"]["amount"] == 0.0001
    assert btc["limits"]["cost"]["min"] == 5 and btc["limits"]["amount"]["min"] == 0.0001
    assert btc["limits"]["price"]["min"] == 0.1
    eth = markets["ETH/USDT"]
    assert eth["precision"]["price"] == 0.01 and eth["precision"]["amount"] == 0.001


# -- resting orders ----------------------------------------------------------------------------------


async def test_limit_order_lifecycle_by_id_and_client_id(server: LoopbackBinance, exchange: ccxt.binance) -> None:
    placed = await exchange.create_order(BTC, "limit", "buy", 0.01, 49000, {"clientOrderId": "desk-1"})
    assert placed["status"] == "open" and placed["clientOrderId"] == "desk-1"
    assert _dec(placed["amount"]) == D("0.01") and placed["filled"] == 0
    assert server.requests[ORDER] == 1
    assert server.balance("USDT").locked == D("490.49")  # 490 + worst-case 0.1% commission

    by_id = await exchange.fetch_order(placed["id"], BTC)
    by_cid = await exchange.fetch_order("", BTC, {"clientOrderId": "desk-1"})
    by_orig = await exchange.fetch_order("", BTC, {"origClientOrderId": "desk-1"})
    assert by_id["id"] == by_cid["id"] == by_orig["id"] == placed["id"]
    assert by_id["status"] == "open" and by_id["price"] == 49000

    open_ = await exchange.fetch_open_orders(BTC)
    assert [o["clientOrderId"] for o in open_] == ["desk-1"]

    cancelled = await exchange.cancel_order(placed["id"], BTC)
    assert cancelled["status"] == "canceled" and cancelled["id"] == placed["id"]
    # as on Binance, a cancel answers with the cancel request's own id; the order's is origClientOrderId
    assert cancelled["info"]["origClientOrderId"] == "desk-1"
    assert await exchange.fetch_open_orders(BTC) == []
    assert server.balance("USDT").locked == 0 and server.balance("USDT").free == D("1000000")
    assert (await exchange.fetch_order(placed["id"], BTC))["status"] == "canceled"

    with pytest.raises(ccxt.OrderNotFound):  # -2011 Unknown order sent.
        await exchange.cancel_order(placed["id"], BTC)
    with pytest.raises(ccxt.OrderNotFound):  # -2013 Order does not exist.
        await exchange.fetch_order("", BTC, {"clientOrderId": "never-sent"})


async def test_duplicate_client_order_id_of_an_open_order_is_rejected(exchange: ccxt.binance) -> None:
    first = await exchange.create_order(BTC, "limit", "buy", 0.01, 49000, {"clientOrderId": "dup"})
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        await exchange.create_order(BTC, "limit", "buy", 0.01, 48000, {"clientOrderId": "dup"})
    await exchange.cancel_order("", BTC, {"clientOrderId": "dup"})
    again = await exchange.create_order(BTC, "limit", "buy", 0.01, 48000, {"clientOrderId": "dup"})
    assert again["id"] != first["id"] and again["status"] == "open"


async def test_cancel_all_orders_is_one_delete_open_orders(server: LoopbackBinance, exchange: ccxt.binance) -> None:
    await exchange.create_order(BTC, "limit", "buy", 0.01, 49000, {"clientOrderId": "a"})
    await exchange.create_order(BTC, "limit", "sell", 0.01, 52000, {"clientOrderId": "b"})
    await exchange.create_order("ETH/USDT", "limit", "buy", 0.1, 2900, {"clientOrderId": "c"})
    cancelled = await exchange.cancel_all_orders(BTC)
    assert server.requests[("DELETE", "/api/v3/openOrders")] == 1
    assert server.requests[("DELETE", "/api/v3/order")] == 0
    assert sorted(o["info"]["origClientOrderId"] for o in cancelled) == ["a", "b"]
    assert {o["status"] for o in cancelled} == {"canceled"}
    assert [o["clientOrderId"] for o in await exchange.fetch_open_orders("ETH/USDT")] == ["c"]
    assert server.balance("BTC").locked == 0
    with pytest.raises(ccxt.OrderNotFound):  # Binance answers -2011 when there is nothing to cancel
        await exchange.cancel_all_orders(BTC)


# -- fills -------------------------------------------------------------------------------------------


async def test_market_order_fills_with_trades_fee_and_balances(server: LoopbackBinance,
                                                              exchange: ccxt.binance) -> None:
    server.set_price("BTCUSDT", D("51000"))
    order = await exchange.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "mkt-1"})
    assert order["status"] == "closed" and _dec(order["filled"]) == D("0.01")
    assert _dec(order["cost"]) == D("510") and _dec(order["average"]) == D("51000")
    assert len(order["trades"]) == 1
    assert order["fee"] == {"currency": "USDT", "cost": 0.51}  # 0.1% taker in the quote asset

    trades = await exchange.fetch_my_trades(BTC)
    assert len(trades) == 1
    t = trades[0]
    assert (t["order"], t["side"], t["takerOrMaker"]) == (order["id"], "buy", "taker")
    assert _dec(t["price"]) == D("51000") and _dec(t["amount"]) == D("0.01")
    assert t["fee"]["currency"] == "USDT" and _dec(t["fee"]["cost"]) == D("0.51")

    balance = await exchange.fetch_balance()
    assert _dec(balance["USDT"]["free"]) == D("1000000") - D("510.51")
    assert _dec(balance["BTC"]["total"]) == D("10.01")
    assert server.balance("USDT").free == D("999489.49")  # exact on the server side


async def test_resting_limit_fills_as_maker_when_the_price_crosses(server: LoopbackBinance,
                                                                   exchange: ccxt.binance) -> None:
    sell = await exchange.create_order("ETH/USDT", "limit", "sell", 1.5, 3100, {"clientOrderId": "s-1"})
    assert sell["status"] == "open" and server.balance("ETH").locked == D("1.5")
    assert server.set_price("ETHUSDT", D("3099.99")) == []
    made = server.set_price("ETHUSDT", D("3120"))
    assert [(t.price, t.qty, t.is_maker) for t in made] == [(D("3100"), D("1.5"), True)]

    done = await exchange.fetch_order(sell["id"], "ETH/USDT")
    assert done["status"] == "closed" and _dec(done["cost"]) == D("4650")
    trades = await exchange.fetch_my_trades("ETH/USDT", None, None, {"orderId": sell["id"]})
    assert [(t["takerOrMaker"], _dec(t["fee"]["cost"])) for t in trades] == [("maker", D("4.65"))]
    assert server.balance("ETH").free == D("98.5") and server.balance("ETH").locked == 0
    assert server.balance("USDT").free == D("1000000") + D("4650") - D("4.65")


async def test_partial_fill_then_cancel(server: LoopbackBinance, exchange: ccxt.binance) -> None:
    buy = await exchange.create_order(BTC, "limit", "buy", 0.02, 49000, {"clientOrderId": "p-1"})
    server.fill("p-1", D("0.005"))
    partial = await exchange.fetch_order(buy["id"], BTC)
    assert partial["status"] == "open" and partial["info"]["status"] == "PARTIALLY_FILLED"
    assert _dec(partial["filled"]) == D("0.005") and _dec(partial["remaining"]) == D("0.015")
    cancelled = await exchange.cancel_order(buy["id"], BTC)
    assert cancelled["status"] == "canceled" and _dec(cancelled["filled"]) == D("0.005")
    usdt = server.balance("USDT")
    assert usdt.locked == 0 and usdt.free == D("1000000") - D("245") - D("0.245")


async def test_crossing_limit_takes_and_ioc_expires(server: LoopbackBinance, exchange: ccxt.binance) -> None:
    taken = await exchange.create_order(BTC, "limit", "buy", 0.01, 50500, {"clientOrderId": "x-1"})
    assert taken["status"] == "closed" and _dec(taken["average"]) == D("50000")  # filled at the last price
    assert taken["trades"][0]["fee"]["cost"] == 0.5
    ioc = await exchange.create_order(BTC, "limit", "buy", 0.01, 49000, {"timeInForce": "IOC"})
    assert ioc["status"] == "expired" and ioc["filled"] == 0
    with pytest.raises(ccxt.OrderImmediatelyFillable):
        await exchange.create_order(BTC, "limit", "buy", 0.01, 50500, {"postOnly": True})
    assert server.balance("USDT").locked == 0


async def test_filters_and_funds_are_enforced(exchange: ccxt.binance) -> None:
    with pytest.raises(ccxt.BadRequest, match="NOTIONAL"):
        await exchange.create_order(BTC, "limit", "buy", 0.0001, 40000)  # 4 USDT < 5
    with pytest.raises(ccxt.InsufficientFunds):
        await exchange.create_order(BTC, "limit", "buy", 100, 40000)
    # bypass ccxt's own rounding to hit the server's LOT_SIZE / PRICE_FILTER checks
    with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):
        await exchange.private_post_order({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                           "timeInForce": "GTC", "quantity": "0.00015", "price": "40000"})
    with pytest.raises(ccxt.InvalidOrder, match="PRICE_FILTER"):
        await exchange.private_post_order({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                           "timeInForce": "GTC", "quantity": "0.001", "price": "40000.05"})


async def test_fetch_ticker_follows_set_price(server: LoopbackBinance, exchange: ccxt.binance) -> None:
    server.set_price("BTCUSDT", D("51234.5"))
    ticker = await exchange.fetch_ticker(BTC)
    assert ticker["last"] == 51234.5 and ticker["bid"] == 51234.5 and ticker["ask"] == 51234.5
    assert server.requests[("GET", "/api/v3/ticker/24hr")] == 1
    prices = await exchange.public_get_ticker_price({"symbol": "ETHUSDT"})
    assert prices == {"symbol": "ETHUSDT", "price": "3000.00000000"}


# -- authentication ----------------------------------------------------------------------------------


async def test_wrong_secret_or_key_is_an_authentication_error(server: LoopbackBinance) -> None:
    for kwargs in ({"secret": "not-the-secret"}, {"api_key": "not-the-key"}):
        ex = make_ccxt_binance(server, **kwargs)
        try:
            await ex.load_markets()  # public: works without valid credentials
            with pytest.raises(ccxt.AuthenticationError):
                await ex.fetch_balance()
            with pytest.raises(ccxt.AuthenticationError):
                await ex.create_order(BTC, "limit", "buy", 0.01, 49000)
        finally:
            await ex.close()
    assert server.orders == {}
    assert server.requests[("GET", "/api/v3/account")] == 2


async def test_clock_outside_recv_window_is_invalid_nonce(server: LoopbackBinance, exchange: ccxt.binance) -> None:
    server.time_offset_ms = 30_000  # ccxt's default recvWindow is 10 s
    with pytest.raises(ccxt.InvalidNonce):
        await exchange.fetch_balance()


async def test_signature_is_binance_documented_hmac() -> None:
    # the key, secret and requests of Binance's SIGNED endpoint examples (HMAC SHA256)
    key = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    query = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC"
    body = "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
    all_in_one = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    assert binance_signature(secret, query + "&" + body) == all_in_one
    mixed = "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"  # query then body, no '&'
    assert binance_signature(secret, query + body) == mixed

    ltcbtc = MarketSpec("LTCBTC", "LTC", "BTC", tick_size=D("0.000001"), step_size=D("0.001"), min_qty=D("0.001"),
                        max_qty=D("100000"), min_price=D("0.000001"), max_price=D("1000"), min_notional=D("0.0001"))
    async with LoopbackBinance(api_key=key, api_secret=secret, markets=(*DEFAULT_MARKETS, ltcbtc),
                               prices={"BTCUSDT": D("50000"), "ETHUSDT": D("3000"), "LTCBTC": D("0.11")}) as srv:
        srv.time_offset_ms = 1499827319559 + 100 - int(time.time() * 1000)  # the example's moment
        headers = {"X-MBX-APIKEY": key, "Content-Type": "application/x-www-form-urlencoded"}
        async with aiohttp.ClientSession() as http:
            url = f"{srv.base_url}/api/v3/order?{query}"
            async with http.post(url, data=body + "&signature=" + mixed[:-1] + "0", headers=headers) as r:
                bad = {"code": -1022, "msg": "Signature for this request is not valid."}
                assert (r.status, await r.json()) == (400, bad)
            async with http.post(url, data=body + "&signature=" + mixed, headers=headers) as r:
                answer = await r.json()
                assert r.status == 200, answer
        assert answer["status"] == "NEW" and answer["price"] == "0.10000000" and answer["origQty"] == "1.00000000"
        assert srv.balance("BTC").locked == D("0.1001")


# -- fault dials -------------------------------------------------------------------------------------


async def test_429_is_rate_limit_then_recovers(server: LoopbackBinance, exchange: ccxt.binance) -> None:
    server.status_429_next_n = 1
    with pytest.raises(ccxt.DDoSProtection) as info:  # binance.handle_errors: any 429/418 -> DDoSProtection
        await exchange.fetch_balance()
    assert "-1003" in str(info.value)
    assert exchange.last_response_headers.get("Retry-After") == "1"
    assert (await exchange.fetch_balance())["USDT"]["free"] == 1_000_000
    assert server.requests[("GET", "/api/v3/account")] == 2


async def test_503_is_exchange_not_available(server: LoopbackBinance, exchange: ccxt.binance) -> None:
    server.status_5xx_next_n = 1
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await exchange.create_order(BTC, "limit", "buy", 0.01, 49000, {"clientOrderId": "n-1"})
    assert server.orders == {}  # a 5xx before the matching engine: nothing was booked
    assert (await exchange.create_order(BTC, "limit", "buy", 0.01, 49000, {"clientOrderId": "n-1"}))["status"] == "open"


async def test_dropped_answer_times_out_but_the_order_is_booked(server: LoopbackBinance,
                                                                exchange: ccxt.binance) -> None:
    server.drop_next_response_after_accept = True
    exchange.timeout = 300
    started = time.monotonic()
    with pytest.raises(ccxt.RequestTimeout):
        await exchange.create_order(BTC, "limit", "buy", 0.01, 49000, {"clientOrderId": "lost-1"})
    assert time.monotonic() - started < 2
    booked = server.order_by_client_id("lost-1")
    assert booked is not None and booked.status == "NEW"
    found = await exchange.fetch_order("", BTC, {"clientOrderId": "lost-1"})
    assert found["id"] == str(booked.order_id) and found["status"] == "open"
    assert server.requests[ORDER] == 1


async def test_dropped_answer_reset_mode_is_a_network_error(server: LoopbackBinance,
                                                            exchange: ccxt.binance) -> None:
    server.drop_next_response_after_accept = True
    server.drop_mode = "reset"
    with pytest.raises(ccxt.NetworkError):
        await exchange.create_order(BTC, "market", "sell", 0.01, None, {"clientOrderId": "lost-2"})
    booked = server.order_by_client_id("lost-2")
    assert booked is not None and booked.status == "FILLED"
    assert server.balance("BTC").free == D("9.99")


async def test_slow_answers_time_out(server: LoopbackBinance, exchange: ccxt.binance) -> None:
    exchange.timeout = 200
    server.delay_seconds = 0.5
    with pytest.raises(ccxt.RequestTimeout):
        await exchange.fetch_ticker(BTC)
    server.delay_seconds = 0.05
    assert (await exchange.fetch_ticker(BTC))["last"] == 50000
