"""A loopback Binance SPOT REST server for tests.

``LoopbackBinance`` is an ``aiohttp.web`` server started in-process on ``127.0.0.1`` (port 0)
that speaks enough of Binance's spot REST API (``/api/v3``) for ccxt's *real*
``ccxt.async_support.binance`` class to load markets, trade, cancel, look up orders and
trades and read balances against it:

* ``exchangeInfo`` with ``PRICE_FILTER`` / ``LOT_SIZE`` / ``NOTIONAL`` filters;
* HMAC-SHA256 request signing checked the way Binance checks it (the signature covers the
  query string followed by the body, ``X-MBX-APIKEY`` header, ``timestamp`` + ``recvWindow``);
* a tiny matching engine: MARKET fills at the last price, crossing LIMITs fill at the last price
  (taker), resting LIMITs fill at their limit price (maker) when ``set_price`` crosses them;
  commission is charged in the quote asset; balances move with every fill;
* fault dials: ``status_429_next_n``, ``status_5xx_next_n``, ``delay_seconds``,
  ``drop_next_response_after_accept`` and a clock skew ``time_offset_ms``;
* ``requests[(method, path)]`` counts every request that reached the server.

Everything is ``Decimal`` internally and every decimal goes over the wire as a string with
eight places, as Binance does.

Point a ccxt client at it with :func:`point_ccxt_at` (or build one with
:func:`make_ccxt_binance`)::

    async with LoopbackBinance() as server:
        exchange = make_ccxt_binance(server)
        try:
            await exchange.load_markets()
            ...
        finally:
            await exchange.close()
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import re
import secrets
import string
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, ROUND_UP, Decimal
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from aiohttp import web

__all__ = [
    "CCXT_OPTIONS",
    "DEFAULT_BALANCES",
    "DEFAULT_MARKETS",
    "DEFAULT_PRICES",
    "BinanceError",
    "LoopbackBinance",
    "MarketSpec",
    "SpotOrder",
    "SpotTrade",
    "binance_signature",
    "make_ccxt_binance",
    "point_ccxt_at",
]

D = Decimal
_EIGHT = D("0.00000001")
_DECIMAL_RE = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
_DECIMAL_RANGE = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"
_CLIENT_ID_RE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
_CLIENT_ID_RANGE = r"^[\.A-Z\:/a-z0-9_-]{1,36}$"
_ID_ALPHABET = string.ascii_letters + string.digits

OPEN_STATUSES = frozenset({"NEW", "PARTIALLY_FILLED"})

#: ccxt options that keep ``load_markets`` to a single ``GET /api/v3/exchangeInfo``:
#: no ``sapi/v1/capital/config/getall`` (fetchCurrencies), no margin pair lists (fetchMargins),
#: no fapi/dapi exchangeInfo (fetchMarkets types) and no ``/api/v3/time`` (adjustForTimeDifference).
CCXT_OPTIONS: dict[str, Any] = {
    "fetchCurrencies": False,
    "fetchMargins": False,
    "fetchMarkets": {"types": ["spot"]},
    "adjustForTimeDifference": False,
}


def fmt(value: Decimal) -> str:
    """Binance's wire format for a decimal: a string with eight places."""
    return f"{value.quantize(_EIGHT):f}"


def binance_signature(secret: str, payload: str) -> str:
    """HMAC-SHA256 of ``payload`` (query string + body, without ``signature``) as lowercase hex."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


# -- model ------------------------------------------------------------------------------------------


@dataclass
class MarketSpec:
    symbol: str
    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_price: Decimal
    max_price: Decimal
    min_notional: Decimal
    max_notional: Decimal = D("9000000")
    status: str = "TRADING"


DEFAULT_MARKETS: tuple[MarketSpec, ...] = (
    MarketSpec("BTCUSDT", "BTC", "USDT", tick_size=D("0.1"), step_size=D("0.0001"), min_qty=D("0.0001"),
               max_qty=D("9000"), min_price=D("0.1"), max_price=D("1000000"), min_notional=D("5")),
    MarketSpec("ETHUSDT", "ETH", "USDT", tick_size=D("0.01"), step_size=D("0.001"), min_qty=D("0.001"),
               max_qty=D("100000"), min_price=D("0.01"), max_price=D("1000000"), min_notional=D("5")),
)
DEFAULT_PRICES: dict[str, Decimal] = {"BTCUSDT": D("50000"), "ETHUSDT": D("3000")}
DEFAULT_BALANCES: dict[str, Decimal] = {"USDT": D("1000000"), "BTC": D("10"), "ETH": D("100")}


@dataclass
class Balance:
    free: Decimal = D(0)
    locked: Decimal = D(0)

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


@dataclass
class SpotOrder:
    symbol: str
    order_id: int
    client_order_id: str
    side: str  # BUY | SELL
    type: str  # LIMIT | LIMIT_MAKER | MARKET
    time_in_force: str  # GTC | IOC | FOK
    price: Decimal  # 0 for MARKET, as Binance reports it
    orig_qty: Decimal
    orig_quote_qty: Decimal
    time: int
    status: str = "NEW"
    executed_qty: Decimal = D(0)
    cum_quote_qty: Decimal = D(0)
    update_time: int = 0
    lock_asset: str = ""
    lock_remaining: Decimal = D(0)
    trade_ids: list[int] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> Decimal:
        return self.orig_qty - self.executed_qty


@dataclass
class SpotTrade:
    id: int
    symbol: str
    order_id: int
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    is_buyer: bool
    is_maker: bool


class BinanceError(Exception):
    """An error answer in Binance's shape: ``{"code": -2013, "msg": "Order does not exist."}``."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(f"{status} {code} {msg}")
        self.status = status
        self.code = code
        self.msg = msg


def _mandatory(name: str) -> BinanceError:
    return BinanceError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def _not_required(name: str) -> BinanceError:
    return BinanceError(400, -1106, f"Parameter '{name}' sent when not required.")


def _illegal(name: str, legal: str) -> BinanceError:
    return BinanceError(400, -1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'.")


def _filter_failure(name: str) -> BinanceError:
    return BinanceError(400, -1013, f"Filter failure: {name}")


_INSUFFICIENT = (400, -2010, "Account has insufficient balance for requested action.")
_UNKNOWN_ORDER = (400, -2011, "Unknown order sent.")
_NO_SUCH_ORDER = (400, -2013, "Order does not exist.")

Params = dict[str, str]
Handler = Callable[[Params], Any]


# -- server -----------------------------------------------------------------------------------------


class LoopbackBinance:
    """Binance spot REST on 127.0.0.1, in-process. See the module docstring.

    Fault dials (plain attributes, set them at any time):

    * ``status_429_next_n``: the next N requests get HTTP 429, a ``Retry-After`` header
      (``retry_after_seconds``) and ``{"code": -1003, ...}``.
    * ``status_5xx_next_n``: the next N requests get ``status_5xx_code`` (503) with a plain-text
      body, as a gateway in front of the API would answer.
    * ``delay_seconds``: every request waits this long before it is handled.
    * ``drop_next_response_after_accept``: the next ``POST /api/v3/order`` that is *accepted* is
      booked (and matched) but its answer never comes: in ``drop_mode="hang"`` the server holds
      the request for ``drop_hold_seconds`` (or until ``stop()``) so the client times out; in
      ``drop_mode="reset"`` it aborts the connection at once.
    * ``time_offset_ms``: the server clock's offset from the local clock (for ``-1021``).

    The faults are applied in that order, after the request is counted in ``requests``.
    """

    def __init__(
        self,
        *,
        api_key: str = "loopback-api-key",
        api_secret: str = "loopback-api-secret",
        markets: Iterable[MarketSpec] = DEFAULT_MARKETS,
        prices: dict[str, Decimal] | None = None,
        balances: dict[str, Decimal] | None = None,
        taker_fee: Decimal = D("0.001"),
        maker_fee: Decimal = D("0.001"),
        host: str = "127.0.0.1",
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.markets: dict[str, MarketSpec] = {m.symbol: m for m in markets}
        self.prices: dict[str, Decimal] = dict(DEFAULT_PRICES if prices is None else prices)
        start = DEFAULT_BALANCES if balances is None else balances
        self.balances: dict[str, Balance] = {a: Balance(free=D(v)) for a, v in start.items()}
        for m in self.markets.values():
            self.balances.setdefault(m.base, Balance())
            self.balances.setdefault(m.quote, Balance())
        self.taker_fee = taker_fee
        self.maker_fee = maker_fee
        self.host = host

        # fault dials
        self.status_429_next_n = 0
        self.retry_after_seconds = 1
        self.status_5xx_next_n = 0
        self.status_5xx_code = 503
        self.delay_seconds = 0.0
        self.drop_next_response_after_accept = False
        self.drop_mode = "hang"  # "hang" (client times out) | "reset" (connection aborted)
        self.drop_hold_seconds = 5.0
        self.time_offset_ms = 0

        # observation
        self.requests: Counter[tuple[str, str]] = Counter()
        self.request_log: list[tuple[str, str, Params]] = []

        # state
        self.orders: dict[int, SpotOrder] = {}
        self.trades: list[SpotTrade] = []
        self._order_ids = itertools.count(1_000_001)
        self._trade_ids = itertools.count(500_001)
        self._stats = {s: {"open": p, "high": p, "low": p} for s, p in self.prices.items()}

        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self.base_url = ""
        self._routes: dict[tuple[str, str], tuple[Handler, bool]] = {
            ("GET", "/api/v3/ping"): (self._ping, False),
            ("GET", "/api/v3/time"): (self._time, False),
            ("GET", "/api/v3/exchangeInfo"): (self._exchange_info, False),
            ("GET", "/api/v3/ticker/price"): (self._ticker_price, False),
            ("GET", "/api/v3/ticker/bookTicker"): (self._book_ticker, False),
            ("GET", "/api/v3/ticker/24hr"): (self._ticker_24hr, False),
            ("GET", "/api/v3/avgPrice"): (self._avg_price, False),
            ("POST", "/api/v3/order"): (self._new_order, True),
            ("POST", "/api/v3/order/test"): (self._test_order, True),
            ("GET", "/api/v3/order"): (self._query_order, True),
            ("DELETE", "/api/v3/order"): (self._cancel_order, True),
            ("GET", "/api/v3/openOrders"): (self._open_orders, True),
            ("DELETE", "/api/v3/openOrders"): (self._cancel_open_orders, True),
            ("GET", "/api/v3/allOrders"): (self._all_orders, True),
            ("GET", "/api/v3/myTrades"): (self._my_trades, True),
            ("GET", "/api/v3/account"): (self._account, True),
        }

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> str:
        """Start listening on ``host``:0; returns the base URL (``http://127.0.0.1:PORT``)."""
        if self._runner is not None:
            return self.base_url
        self._closing = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self.host, 0)
        await site.start()
        self._runner = runner
        port = runner.addresses[0][1]
        self.base_url = f"http://{self.host}:{port}"
        return self.base_url

    async def stop(self) -> None:
        self._closing.set()  # releases requests held by drop_next_response_after_accept
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> LoopbackBinance:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- test-side controls -----------------------------------------------------------------------

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.time_offset_ms

    def price(self, symbol: str) -> Decimal:
        return self.prices[symbol]

    def set_price(self, symbol: str, price: Decimal | str | int) -> list[SpotTrade]:
        """Move the last price; resting LIMITs it crosses fill in full at their limit price (maker).

        A resting BUY is crossed when the price falls to or below its limit, a SELL when it rises
        to or above. Returns the trades made, oldest order first."""
        price = D(price)
        if symbol not in self.markets:
            raise KeyError(f"no market {symbol!r}")
        self.prices[symbol] = price
        stats = self._stats.setdefault(symbol, {"open": price, "high": price, "low": price})
        stats["high"], stats["low"] = max(stats["high"], price), min(stats["low"], price)
        made = []
        for order in sorted(self.orders.values(), key=lambda o: o.order_id):
            if order.symbol != symbol or not order.is_open:
                continue
            if (order.side == "BUY" and price <= order.price) or (order.side == "SELL" and price >= order.price):
                made.append(self._fill(order, order.remaining, order.price, maker=True))
        return made

    def fill(self, order: int | str | SpotOrder, qty: Decimal | str | None = None,
             price: Decimal | str | None = None) -> SpotTrade:
        """Fill a resting order as maker: ``qty`` (default: all that remains) at ``price``
        (default: its limit price). A partial fill leaves it PARTIALLY_FILLED."""
        o = order if isinstance(order, SpotOrder) else self.find_order(order)
        if o is None or not o.is_open:
            raise ValueError(f"no open order {order!r}")
        q = o.remaining if qty is None else D(qty)
        if not D(0) < q <= o.remaining:
            raise ValueError(f"fill of {q} does not fit the {o.remaining} remaining")
        return self._fill(o, q, o.price if price is None else D(price), maker=True)

    def find_order(self, key: int | str) -> SpotOrder | None:
        """An order by its orderId (int or digits) or, failing that, its latest clientOrderId."""
        if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
            found = self.orders.get(int(key))
            if found is not None:
                return found
        return self.order_by_client_id(str(key))

    def order_by_client_id(self, client_order_id: str, symbol: str | None = None) -> SpotOrder | None:
        for o in sorted(self.orders.values(), key=lambda o: o.order_id, reverse=True):
            if o.client_order_id == client_order_id and (symbol is None or o.symbol == symbol):
                return o
        return None

    def open_orders(self, symbol: str | None = None) -> list[SpotOrder]:
        return [o for o in sorted(self.orders.values(), key=lambda o: o.order_id)
                if o.is_open and (symbol is None or o.symbol == symbol)]

    def balance(self, asset: str) -> Balance:
        return self.balances.setdefault(asset, Balance())

    def set_balance(self, asset: str, free: Decimal | str | int) -> None:
        self.balance(asset).free = D(free)

    def count(self, method: str, path: str) -> int:
        return self.requests[(method.upper(), path)]

    # -- HTTP -------------------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        method, path = request.method.upper(), request.path
        self.requests[(method, path)] += 1
        raw_query = request.raw_path.partition("?")[2]
        body = await request.text() if request.body_exists else ""
        try:
            params = self._params(raw_query, body)
        except BinanceError as e:
            self.request_log.append((method, path, {}))
            return self._error(e)
        self.request_log.append((method, path, params))

        if self.status_429_next_n > 0:
            self.status_429_next_n -= 1
            msg = ("Too many requests; current limit of IP(127.0.0.1) is 6000 requests per minute. "
                   "Please use WebSocket Streams for live updates to avoid polling the API.")
            return web.json_response({"code": -1003, "msg": msg}, status=429,
                                     headers={"Retry-After": str(self.retry_after_seconds)})
        if self.status_5xx_next_n > 0:
            self.status_5xx_next_n -= 1
            return web.Response(status=self.status_5xx_code, text=f"{self.status_5xx_code} Service Unavailable",
                                content_type="text/plain")
        if self.delay_seconds > 0:
            await self._hold(self.delay_seconds)

        route = self._routes.get((method, path))
        if route is None:
            return web.Response(status=404, text="404 Not Found", content_type="text/plain")
        handler, signed = route
        try:
            if signed:
                self._authenticate(request, raw_query, body, params)
            payload = handler(params)
        except BinanceError as e:
            return self._error(e)

        if (method, path) == ("POST", "/api/v3/order") and self.drop_next_response_after_accept:
            self.drop_next_response_after_accept = False
            if self.drop_mode == "reset":
                if request.transport is not None:
                    request.transport.abort()
            else:
                await self._hold(self.drop_hold_seconds)
                if request.transport is not None:
                    request.transport.close()
            return web.Response(status=500, text="dropped")  # nobody is listening any more
        return web.json_response(payload, headers={"X-MBX-USED-WEIGHT-1M": str(sum(self.requests.values()))})

    async def _hold(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
        except TimeoutError:
            pass

    @staticmethod
    def _error(e: BinanceError) -> web.Response:
        return web.json_response({"code": e.code, "msg": e.msg}, status=e.status)

    @staticmethod
    def _params(raw_query: str, body: str) -> Params:
        params: Params = {}
        for raw in (raw_query, body):
            for key, value in parse_qsl(raw, keep_blank_values=True):
                if key == "signature":
                    continue
                if key in params:
                    raise BinanceError(400, -1101, "Duplicate values for a parameter detected.")
                params[key] = value
        return params

    def _authenticate(self, request: web.Request, raw_query: str, body: str, params: Params) -> None:
        key = request.headers.get("X-MBX-APIKEY")
        if not key:
            raise BinanceError(401, -2014, "API-key format invalid.")
        if key != self.api_key:
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        # totalParams = query string concatenated with the body, each without its signature
        signatures, unsigned = [], []
        for raw in (raw_query, body):
            parts = [p for p in raw.split("&") if p]
            signatures += [unquote_plus(p.partition("=")[2]) for p in parts if p.startswith("signature=")]
            unsigned.append("&".join(p for p in parts if not p.startswith("signature=")))
        if len(signatures) != 1 or not signatures[0]:
            raise _mandatory("signature")
        if not hmac.compare_digest(binance_signature(self.api_secret, "".join(unsigned)), signatures[0].lower()):
            raise BinanceError(400, -1022, "Signature for this request is not valid.")
        if "timestamp" not in params or not params["timestamp"].isdigit():
            raise _mandatory("timestamp")
        recv_window = params.get("recvWindow", "5000")
        if not recv_window.isdigit():
            raise _illegal("recvWindow", "^[0-9]{1,20}$")
        if int(recv_window) > 60000:
            raise BinanceError(400, -1131, "recvWindow must be less than 60000")
        timestamp, now = int(params["timestamp"]), self.now_ms()
        if timestamp > now + 1000:
            raise BinanceError(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if now - timestamp > int(recv_window):
            raise BinanceError(400, -1021, "Timestamp for this request is outside of the recvWindow.")

    # -- parameter helpers ------------------------------------------------------------------------

    def _market_spec(self, symbol: str) -> MarketSpec:
        spec = self.markets.get(symbol)
        if spec is None:
            raise BinanceError(400, -1121, "Invalid symbol.")
        return spec

    def _symbol(self, params: Params, required: bool = True) -> MarketSpec | None:
        symbol = params.get("symbol")
        if not symbol:
            if required:
                raise _mandatory("symbol")
            return None
        return self._market_spec(symbol)

    def _symbols(self, params: Params) -> list[MarketSpec]:
        one = self._symbol(params, required=False)
        if one is not None:
            return [one]
        if "symbols" in params:
            try:
                names = json.loads(params["symbols"])
            except ValueError:
                raise _illegal("symbols", r"^\[(\"[A-Z0-9-_.]{1,20}\"(,\"[A-Z0-9-_.]{1,20}\"){0,}){0,1}\]$") from None
            return [self._market_spec(n) for n in names]
        return list(self.markets.values())

    @staticmethod
    def _decimal(params: Params, name: str) -> Decimal | None:
        value = params.get(name)
        if value is None or value == "":
            return None
        if not _DECIMAL_RE.match(value):
            raise _illegal(name, _DECIMAL_RANGE)
        return D(value)

    @staticmethod
    def _int(params: Params, name: str) -> int | None:
        value = params.get(name)
        if value is None or value == "":
            return None
        if not value.lstrip("-").isdigit():
            raise _illegal(name, "^-?[0-9]{1,20}$")
        return int(value)

    # -- public endpoints -------------------------------------------------------------------------

    def _ping(self, params: Params) -> dict[str, Any]:
        return {}

    def _time(self, params: Params) -> dict[str, Any]:
        return {"serverTime": self.now_ms()}

    def _exchange_info(self, params: Params) -> dict[str, Any]:
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
            ],
            "exchangeFilters": [],
            "symbols": [self._symbol_info(m) for m in self._symbols(params)],
        }

    @staticmethod
    def _symbol_info(m: MarketSpec) -> dict[str, Any]:
        return {
            "symbol": m.symbol,
            "status": m.status,
            "baseAsset": m.base,
            "baseAssetPrecision": 8,
            "quoteAsset": m.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            # only what this server implements, so ccxt refuses anything else client-side
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
            "icebergAllowed": False,
            "ocoAllowed": False,
            "otoAllowed": False,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": False,
            "cancelReplaceAllowed": False,
            "amendAllowed": False,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": fmt(m.min_price), "maxPrice": fmt(m.max_price),
                 "tickSize": fmt(m.tick_size)},
                {"filterType": "LOT_SIZE", "minQty": fmt(m.min_qty), "maxQty": fmt(m.max_qty),
                 "stepSize": fmt(m.step_size)},
                {"filterType": "NOTIONAL", "minNotional": fmt(m.min_notional), "applyMinToMarket": True,
                 "maxNotional": fmt(m.max_notional), "applyMaxToMarket": False, "avgPriceMins": 5},
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }

    def _one_or_list(self, params: Params, row: Callable[[MarketSpec], dict[str, Any]]) -> Any:
        rows = [row(m) for m in self._symbols(params)]
        return rows[0] if "symbol" in params else rows

    def _ticker_price(self, params: Params) -> Any:
        return self._one_or_list(params, lambda m: {"symbol": m.symbol, "price": fmt(self.prices[m.symbol])})

    def _book_ticker(self, params: Params) -> Any:
        def row(m: MarketSpec) -> dict[str, Any]:
            p = fmt(self.prices[m.symbol])
            return {"symbol": m.symbol, "bidPrice": p, "bidQty": fmt(D(1000)), "askPrice": p, "askQty": fmt(D(1000))}
        return self._one_or_list(params, row)

    def _ticker_24hr(self, params: Params) -> Any:
        now = self.now_ms()

        def row(m: MarketSpec) -> dict[str, Any]:
            last = self.prices[m.symbol]
            stats = self._stats.setdefault(m.symbol, {"open": last, "high": last, "low": last})
            trades = [t for t in self.trades if t.symbol == m.symbol]
            volume = sum((t.qty for t in trades), D(0))
            quote_volume = sum((t.quote_qty for t in trades), D(0))
            change = last - stats["open"]
            percent = (change * 100 / stats["open"]).quantize(D("0.001")) if stats["open"] else D(0)
            return {
                "symbol": m.symbol,
                "priceChange": fmt(change),
                "priceChangePercent": f"{percent:f}",
                "weightedAvgPrice": fmt(quote_volume / volume if volume else last),
                "prevClosePrice": fmt(stats["open"]),
                "lastPrice": fmt(last),
                "lastQty": fmt(trades[-1].qty if trades else D(0)),
                "bidPrice": fmt(last), "bidQty": fmt(D(1000)),
                "askPrice": fmt(last), "askQty": fmt(D(1000)),
                "openPrice": fmt(stats["open"]),
                "highPrice": fmt(stats["high"]),
                "lowPrice": fmt(stats["low"]),
                "volume": fmt(volume),
                "quoteVolume": fmt(quote_volume),
                "openTime": now - 86_400_000,
                "closeTime": now,
                "firstId": trades[0].id if trades else -1,
                "lastId": trades[-1].id if trades else -1,
                "count": len(trades),
            }
        return self._one_or_list(params, row)

    def _avg_price(self, params: Params) -> dict[str, Any]:
        m = self._symbol(params)
        assert m is not None
        return {"mins": 5, "price": fmt(self.prices[m.symbol]), "closeTime": self.now_ms()}

    # -- trading ----------------------------------------------------------------------------------

    def _validate_new_order(self, params: Params) -> dict[str, Any]:
        """All the checks of ``POST /api/v3/order``; returns the normalised request."""
        m = self._symbol(params)
        assert m is not None
        side = params.get("side")
        if not side:
            raise _mandatory("side")
        if side not in ("BUY", "SELL"):
            raise BinanceError(400, -1117, "Invalid side.")
        otype = params.get("type")
        if not otype:
            raise _mandatory("type")
        if otype not in ("LIMIT", "LIMIT_MAKER", "MARKET"):
            raise BinanceError(400, -1116, "Invalid orderType.")
        cid = params.get("newClientOrderId") or "".join(secrets.choice(_ID_ALPHABET) for _ in range(22))
        if not _CLIENT_ID_RE.match(cid):
            raise _illegal("newClientOrderId", _CLIENT_ID_RANGE)
        resp_type = params.get("newOrderRespType") or ("FULL" if otype in ("LIMIT", "MARKET") else "ACK")
        if resp_type not in ("ACK", "RESULT", "FULL"):
            raise BinanceError(400, -1100, "Illegal characters found in parameter 'newOrderRespType'; "
                                           "legal range is 'ACK, RESULT, FULL'.")
        qty = self._decimal(params, "quantity")
        quote_qty = self._decimal(params, "quoteOrderQty")
        price = self._decimal(params, "price")
        tif = params.get("timeInForce")
        last = self.prices[m.symbol]

        if otype == "MARKET":
            if price is not None:
                raise _not_required("price")
            if tif:
                raise _not_required("timeInForce")
            if qty is None and quote_qty is None:
                raise BinanceError(400, -1102, "Param 'quantity' or 'quoteOrderQty' must be sent, "
                                               "but both were empty/null!")
            if qty is not None and quote_qty is not None:
                raise _not_required("quoteOrderQty")
            if qty is None:
                assert quote_qty is not None
                qty = (quote_qty // (last * m.step_size)) * m.step_size
            tif, exec_price = "GTC", last
        else:
            if qty is None:
                raise _mandatory("quantity")
            if quote_qty is not None:
                raise _not_required("quoteOrderQty")
            if price is None:
                raise _mandatory("price")
            if otype == "LIMIT":
                if not tif:
                    raise _mandatory("timeInForce")
                if tif not in ("GTC", "IOC", "FOK"):
                    raise BinanceError(400, -1115, "Invalid timeInForce.")
            else:
                tif = "GTC"
            if price < m.min_price or price > m.max_price or price % m.tick_size != 0:
                raise _filter_failure("PRICE_FILTER")
            exec_price = price

        if qty < m.min_qty or qty > m.max_qty or qty % m.step_size != 0:
            raise _filter_failure("LOT_SIZE")
        notional = qty * exec_price
        if notional < m.min_notional:
            raise _filter_failure("NOTIONAL")
        if otype != "MARKET" and notional > m.max_notional:
            raise _filter_failure("NOTIONAL")
        if m.status != "TRADING":
            raise BinanceError(400, -1013, "Market is closed.")
        return {"market": m, "side": side, "type": otype, "cid": cid, "resp_type": resp_type, "qty": qty,
                "quote_qty": quote_qty or D(0), "price": price or D(0), "tif": tif, "last": last}

    def _test_order(self, params: Params) -> dict[str, Any]:
        self._validate_new_order(params)
        return {}

    def _new_order(self, params: Params) -> dict[str, Any]:
        req = self._validate_new_order(params)
        m: MarketSpec = req["market"]
        side, otype, qty, price, last = req["side"], req["type"], req["qty"], req["price"], req["last"]
        if any(o.client_order_id == req["cid"] for o in self.open_orders()):
            raise BinanceError(400, -2010, "Duplicate order sent.")
        crosses = otype == "MARKET" or (side == "BUY" and price >= last) or (side == "SELL" and price <= last)
        if otype == "LIMIT_MAKER" and crosses:
            raise BinanceError(400, -2010, "Order would immediately match and take.")

        # funds: a BUY locks its worst-case cost plus commission in the quote asset, a SELL its base
        if side == "BUY":
            worst = (last if otype == "MARKET" else price) * qty
            lock_asset = m.quote
            lock = worst + (worst * max(self.taker_fee, self.maker_fee)).quantize(_EIGHT, rounding=ROUND_UP)
        else:
            lock_asset, lock = m.base, qty
        wallet = self.balance(lock_asset)
        if wallet.free < lock:
            raise BinanceError(*_INSUFFICIENT)

        now = self.now_ms()
        order = SpotOrder(symbol=m.symbol, order_id=next(self._order_ids), client_order_id=req["cid"], side=side,
                          type=otype, time_in_force=req["tif"], price=price, orig_qty=qty,
                          orig_quote_qty=req["quote_qty"], time=now, update_time=now,
                          lock_asset=lock_asset, lock_remaining=lock)
        wallet.free -= lock
        wallet.locked += lock
        self.orders[order.order_id] = order
        fills: list[SpotTrade] = []
        if crosses:
            fills.append(self._fill(order, qty, last, maker=False))
        elif order.time_in_force in ("IOC", "FOK"):
            order.status = "EXPIRED"
            self._release(order)
        return self._order_ack(order, req["resp_type"], fills, now)

    def _fill(self, order: SpotOrder, qty: Decimal, price: Decimal, *, maker: bool) -> SpotTrade:
        m = self.markets[order.symbol]
        quote_qty = qty * price
        commission = (quote_qty * (self.maker_fee if maker else self.taker_fee)).quantize(_EIGHT, ROUND_HALF_UP)
        base, quote = self.balance(m.base), self.balance(m.quote)
        if order.side == "BUY":
            self._consume(order, quote_qty + commission)
            base.free += qty
        else:
            self._consume(order, qty)
            quote.free += quote_qty - commission
        now = self.now_ms()
        trade = SpotTrade(id=next(self._trade_ids), symbol=order.symbol, order_id=order.order_id, price=price,
                          qty=qty, quote_qty=quote_qty, commission=commission, commission_asset=m.quote, time=now,
                          is_buyer=order.side == "BUY", is_maker=maker)
        self.trades.append(trade)
        order.trade_ids.append(trade.id)
        order.executed_qty += qty
        order.cum_quote_qty += quote_qty
        order.update_time = now
        order.status = "FILLED" if order.executed_qty == order.orig_qty else "PARTIALLY_FILLED"
        if order.status == "FILLED":
            self._release(order)
        return trade

    def _consume(self, order: SpotOrder, amount: Decimal) -> None:
        """Spend ``amount`` of the order's lock asset: from its lock first, any rounding excess from free."""
        wallet = self.balance(order.lock_asset)
        from_lock = min(amount, order.lock_remaining)
        order.lock_remaining -= from_lock
        wallet.locked -= from_lock
        wallet.free -= amount - from_lock

    def _release(self, order: SpotOrder) -> None:
        wallet = self.balance(order.lock_asset)
        wallet.locked -= order.lock_remaining
        wallet.free += order.lock_remaining
        order.lock_remaining = D(0)

    def _lookup(self, params: Params, missing: tuple[int, int, str]) -> SpotOrder:
        m = self._symbol(params)
        assert m is not None
        order_id = self._int(params, "orderId")
        cid = params.get("origClientOrderId")
        if order_id is None and not cid:
            raise BinanceError(400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, "
                                           "but both were empty/null!")
        found = self.orders.get(order_id) if order_id is not None else self.order_by_client_id(cid or "", m.symbol)
        if found is None or found.symbol != m.symbol:
            raise BinanceError(*missing)
        return found

    def _query_order(self, params: Params) -> dict[str, Any]:
        return self._order_json(self._lookup(params, _NO_SUCH_ORDER))

    def _cancel_order(self, params: Params) -> dict[str, Any]:
        order = self._lookup(params, _UNKNOWN_ORDER)
        if not order.is_open:
            raise BinanceError(*_UNKNOWN_ORDER)
        return self._cancel(order, params.get("newClientOrderId"))

    def _cancel(self, order: SpotOrder, cancel_id: str | None) -> dict[str, Any]:
        now = self.now_ms()
        order.status = "CANCELED"
        order.update_time = now
        self._release(order)
        return {
            "symbol": order.symbol,
            "origClientOrderId": order.client_order_id,
            "orderId": order.order_id,
            "orderListId": -1,
            # Binance answers a cancel with the *cancel request's* id here (generated if not sent)
            "clientOrderId": cancel_id or "".join(secrets.choice(_ID_ALPHABET) for _ in range(22)),
            "transactTime": now,
            "price": fmt(order.price),
            "origQty": fmt(order.orig_qty),
            "executedQty": fmt(order.executed_qty),
            "origQuoteOrderQty": fmt(order.orig_quote_qty),
            "cummulativeQuoteQty": fmt(order.cum_quote_qty),
            "status": order.status,
            "timeInForce": order.time_in_force,
            "type": order.type,
            "side": order.side,
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }

    def _cancel_open_orders(self, params: Params) -> list[dict[str, Any]]:
        m = self._symbol(params)
        assert m is not None
        open_ = self.open_orders(m.symbol)
        if not open_:
            raise BinanceError(*_UNKNOWN_ORDER)  # what Binance answers when there is nothing to cancel
        return [self._cancel(o, None) for o in open_]

    def _open_orders(self, params: Params) -> list[dict[str, Any]]:
        m = self._symbol(params, required=False)
        return [self._order_json(o) for o in self.open_orders(m.symbol if m else None)]

    @staticmethod
    def _window(rows: list[Any], key: Callable[[Any], int], start: int | None, limit: int) -> list[Any]:
        """Binance paging: from ``start`` (an id) ascending, else the most recent ``limit``."""
        if start is not None:
            return [r for r in rows if key(r) >= start][:limit]
        return rows[-limit:] if limit else []

    def _limit(self, params: Params) -> int:
        limit = self._int(params, "limit")
        if limit is None:
            return 500
        if not 1 <= limit <= 1000:
            raise BinanceError(400, -1100, "Illegal characters found in parameter 'limit'; "
                                           "legal range is '1..1000'.")
        return limit

    def _all_orders(self, params: Params) -> list[dict[str, Any]]:
        m = self._symbol(params)
        assert m is not None
        start, end = self._int(params, "startTime"), self._int(params, "endTime")
        rows = [o for o in sorted(self.orders.values(), key=lambda o: o.order_id) if o.symbol == m.symbol
                and (start is None or o.time >= start) and (end is None or o.time <= end)]
        rows = self._window(rows, lambda o: o.order_id, self._int(params, "orderId"), self._limit(params))
        return [self._order_json(o) for o in rows]

    def _my_trades(self, params: Params) -> list[dict[str, Any]]:
        m = self._symbol(params)
        assert m is not None
        order_id = self._int(params, "orderId")
        start, end = self._int(params, "startTime"), self._int(params, "endTime")
        rows = [t for t in self.trades if t.symbol == m.symbol and (order_id is None or t.order_id == order_id)
                and (start is None or t.time >= start) and (end is None or t.time <= end)]
        rows = self._window(rows, lambda t: t.id, self._int(params, "fromId"), self._limit(params))
        return [self._trade_json(t) for t in rows]

    def _account(self, params: Params) -> dict[str, Any]:
        omit_zero = params.get("omitZeroBalances") == "true"
        fee = fmt(self.maker_fee), fmt(self.taker_fee)
        return {
            "makerCommission": int(self.maker_fee * 10000),
            "takerCommission": int(self.taker_fee * 10000),
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {"maker": fee[0], "taker": fee[1], "buyer": fmt(D(0)), "seller": fmt(D(0))},
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": self.now_ms(),
            "accountType": "SPOT",
            "balances": [{"asset": a, "free": fmt(b.free), "locked": fmt(b.locked)}
                         for a, b in sorted(self.balances.items()) if not (omit_zero and b.total == 0)],
            "permissions": ["SPOT"],
            "uid": 354937868,
        }

    # -- wire shapes ------------------------------------------------------------------------------

    def _order_ack(self, o: SpotOrder, resp_type: str, fills: list[SpotTrade], now: int) -> dict[str, Any]:
        ack: dict[str, Any] = {"symbol": o.symbol, "orderId": o.order_id, "orderListId": -1,
                               "clientOrderId": o.client_order_id, "transactTime": now}
        if resp_type == "ACK":
            return ack
        ack.update({
            "price": fmt(o.price),
            "origQty": fmt(o.orig_qty),
            "executedQty": fmt(o.executed_qty),
            "origQuoteOrderQty": fmt(o.orig_quote_qty),
            "cummulativeQuoteQty": fmt(o.cum_quote_qty),
            "status": o.status,
            "timeInForce": o.time_in_force,
            "type": o.type,
            "side": o.side,
            "workingTime": o.time,
            "selfTradePreventionMode": "EXPIRE_MAKER",
        })
        if resp_type == "FULL":
            ack["fills"] = [{"price": fmt(t.price), "qty": fmt(t.qty), "commission": fmt(t.commission),
                             "commissionAsset": t.commission_asset, "tradeId": t.id} for t in fills]
        return ack

    @staticmethod
    def _order_json(o: SpotOrder) -> dict[str, Any]:
        return {
            "symbol": o.symbol,
            "orderId": o.order_id,
            "orderListId": -1,
            "clientOrderId": o.client_order_id,
            "price": fmt(o.price),
            "origQty": fmt(o.orig_qty),
            "executedQty": fmt(o.executed_qty),
            "cummulativeQuoteQty": fmt(o.cum_quote_qty),
            "status": o.status,
            "timeInForce": o.time_in_force,
            "type": o.type,
            "side": o.side,
            "stopPrice": fmt(D(0)),
            "icebergQty": fmt(D(0)),
            "time": o.time,
            "updateTime": o.update_time,
            "isWorking": True,
            "workingTime": o.time,
            "origQuoteOrderQty": fmt(o.orig_quote_qty),
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }

    @staticmethod
    def _trade_json(t: SpotTrade) -> dict[str, Any]:
        return {
            "symbol": t.symbol,
            "id": t.id,
            "orderId": t.order_id,
            "orderListId": -1,
            "price": fmt(t.price),
            "qty": fmt(t.qty),
            "quoteQty": fmt(t.quote_qty),
            "commission": fmt(t.commission),
            "commissionAsset": t.commission_asset,
            "time": t.time,
            "isBuyer": t.is_buyer,
            "isMaker": t.is_maker,
            "isBestMatch": True,
        }


# -- ccxt wiring ------------------------------------------------------------------------------------


def point_ccxt_at(exchange: Any, base_url: str) -> Any:
    """Every host in ``exchange.urls['api']`` swapped for ``base_url``, paths kept: ``public`` and
    ``private`` become ``BASE/api/v3``; sapi, fapi, ... point at the loopback too (where they
    404) so nothing can leak to the real exchange. The same helper the product uses."""
    from core.venues.ccxt_venue import point_at

    point_at(exchange, base_url)
    return exchange


def make_ccxt_binance(server: LoopbackBinance, *, secret: str | None = None, api_key: str | None = None,
                      timeout_ms: int = 2000, options: dict[str, Any] | None = None, **config: Any) -> Any:
    """A real ``ccxt.async_support.binance`` talking to ``server`` (call ``close()`` when done).

    Rate limiting is off and ``timeout_on_exit`` is 0: ccxt's async ``close()`` otherwise sleeps
    250 ms (a grace period for TLS transports, which a plain-HTTP loopback does not have)."""
    import ccxt.async_support as ccxt_async

    exchange = ccxt_async.binance({
        "apiKey": server.api_key if api_key is None else api_key,
        "secret": server.api_secret if secret is None else secret,
        "enableRateLimit": False,
        "timeout": timeout_ms,
        "timeout_on_exit": 0,
        "options": {**CCXT_OPTIONS, **(options or {})},
        **config,
    })
    return point_ccxt_at(exchange, server.base_url)
