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
  commission is charged in the quote asset unless ``commission_asset`` says otherwise ("received":
  a BUY pays in the base it receives, as Binance charges; or an asset such as "BNB", valued at
  ``prices[asset + quote]``); balances move with every fill;
* trigger orders (STOP_LOSS, STOP_LOSS_LIMIT, TAKE_PROFIT, TAKE_PROFIT_LIMIT, with
  ``stopPrice``): they rest not working (``isWorking: false``) until ``set_price`` reaches the
  trigger (a stop-loss when the price moves against the side, a take-profit when in favour),
  then work as a MARKET or a LIMIT order; one whose trigger is already reached is refused
  ("Order would trigger immediately."). A market may list fewer types (``MarketSpec.order_types``),
  and ccxt refuses the others client-side as it does on Binance;
* fault dials: ``status_429_next_n``, ``status_5xx_next_n``, ``delay_seconds``,
  ``drop_next_response_after_accept`` and a clock skew ``time_offset_ms``;
* ``requests[(method, path)]`` counts every request that reached the server.
* websocket streams (``streams``, see ``BinanceStreams``; off until ``streams.enabled``): the
  user data stream of the WebSocket API (``executionReport``) and ``<symbol>@ticker`` market
  streams, for ccxt.pro's real ``binance`` class.

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
import copy
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

from aiohttp import WSMsgType, web

from .common import DEFAULT_BALANCES, Funds, LoopbackServer, ccxt_config, crossed

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
TRIGGER_TYPES = frozenset({"STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"})
ALL_ORDER_TYPES = ("LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")

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
    order_types: tuple[str, ...] = ALL_ORDER_TYPES


DEFAULT_MARKETS: tuple[MarketSpec, ...] = (
    MarketSpec("BTCUSDT", "BTC", "USDT", tick_size=D("0.1"), step_size=D("0.0001"), min_qty=D("0.0001"),
               max_qty=D("9000"), min_price=D("0.1"), max_price=D("1000000"), min_notional=D("5")),
    MarketSpec("ETHUSDT", "ETH", "USDT", tick_size=D("0.01"), step_size=D("0.001"), min_qty=D("0.001"),
               max_qty=D("100000"), min_price=D("0.01"), max_price=D("1000000"), min_notional=D("5")),
)
DEFAULT_PRICES: dict[str, Decimal] = {"BTCUSDT": D("50000"), "ETHUSDT": D("3000")}

Balance = Funds  # an asset's ``free`` and ``locked``, as ``/api/v3/account`` names them


@dataclass
class SpotOrder:
    symbol: str
    order_id: int
    client_order_id: str
    side: str  # BUY | SELL
    type: str  # LIMIT | LIMIT_MAKER | MARKET | STOP_LOSS[_LIMIT] | TAKE_PROFIT[_LIMIT]
    time_in_force: str  # GTC | IOC | FOK
    price: Decimal  # 0 for MARKET (and STOP_LOSS / TAKE_PROFIT), as Binance reports it
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
    stop_price: Decimal = D(0)
    working_time: int = -1  # -1 while a trigger order waits for its trigger

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_working(self) -> bool:
        return self.working_time >= 0

    def triggers_at(self, price: Decimal) -> bool:
        """A stop-loss fires when the price moves against the side, a take-profit in favour."""
        if self.type.startswith("STOP_LOSS"):
            return price >= self.stop_price if self.side == "BUY" else price <= self.stop_price
        return price <= self.stop_price if self.side == "BUY" else price >= self.stop_price

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


class LoopbackBinance(LoopbackServer):
    """Binance spot REST on 127.0.0.1, in-process. See the module docstring.

    Fault dials (plain attributes, set them at any time; see :class:`.common.LoopbackServer`):

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
        super().__init__(host)
        self.api_key = api_key
        self.api_secret = api_secret
        # copies: a test that edits a spec must not change DEFAULT_MARKETS for the tests after it
        self.markets: dict[str, MarketSpec] = {m.symbol: copy.deepcopy(m) for m in markets}
        self.prices: dict[str, Decimal] = dict(DEFAULT_PRICES if prices is None else prices)
        start = DEFAULT_BALANCES if balances is None else balances
        self.balances: dict[str, Balance] = {a: Balance(free=D(v)) for a, v in start.items()}
        for m in self.markets.values():
            self.balances.setdefault(m.base, Balance())
            self.balances.setdefault(m.quote, Balance())
        self.taker_fee = taker_fee
        self.maker_fee = maker_fee
        # "quote" (every commission in the quote), "received" (what the trade brings in: the base
        # on a BUY, as Binance charges), or an asset paying every commission (BNB), at its price
        self.commission_asset = "quote"

        self.retry_after_seconds = 1  # the Retry-After of a 429 (status_429_next_n)

        # state
        self.orders: dict[int, SpotOrder] = {}
        self.trades: list[SpotTrade] = []
        self._order_ids = itertools.count(1_000_001)
        self._trade_ids = itertools.count(500_001)
        self._stats = {s: {"open": p, "high": p, "low": p} for s, p in self.prices.items()}
        self.streams = BinanceStreams(self)  # websocket streams, served once ``streams.enabled``

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

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_get("/ws-api/v3", self.streams.user_data)
        app.router.add_get("/ws/{stream}", self.streams.market)
        super()._add_routes(app)

    async def _on_stop(self) -> None:
        await self.streams.close()

    # -- test-side controls -----------------------------------------------------------------------

    def price(self, symbol: str) -> Decimal:
        return self.prices[symbol]

    def set_price(self, symbol: str, price: Decimal | str | int) -> list[SpotTrade]:
        """Move the last price; trigger orders it reaches start working (STOP_LOSS and
        TAKE_PROFIT fill at once at the new price, the LIMIT variants fill there if they cross
        it, as taker); resting LIMITs it crosses fill in full at their limit price (maker).

        A resting BUY is crossed when the price falls to or below its limit, a SELL when it rises
        to or above. Returns the trades made, oldest order first."""
        price = D(price)
        if symbol not in self.markets:
            raise KeyError(f"no market {symbol!r}")
        self.prices[symbol] = price
        stats = self._stats.setdefault(symbol, {"open": price, "high": price, "low": price})
        stats["high"], stats["low"] = max(stats["high"], price), min(stats["low"], price)
        made = []
        mine = [o for o in sorted(self.orders.values(), key=lambda o: o.order_id) if o.symbol == symbol]
        for order in mine:
            if order.is_open and not order.is_working and order.triggers_at(price):
                order.working_time = order.update_time = self.now_ms()
                if order.price == 0 or crossed(order.side == "BUY", order.price, price):
                    made.append(self._fill(order, order.remaining, price, maker=False))
        for order in mine:
            if not order.is_open or not order.is_working or order.price == 0:
                continue
            if crossed(order.side == "BUY", order.price, price):
                made.append(self._fill(order, order.remaining, order.price, maker=True))
        self.streams.publish(symbol)
        return made

    def fill(self, order: int | str | SpotOrder, qty: Decimal | str | None = None,
             price: Decimal | str | None = None) -> SpotTrade:
        """Fill a resting order as maker: ``qty`` (default: all that remains) at ``price``
        (default: its limit price). A partial fill leaves it PARTIALLY_FILLED."""
        o = order if isinstance(order, SpotOrder) else self.find_order(order)
        if o is None or not o.is_open:
            raise ValueError(f"no open order {order!r}")
        if not o.is_working:
            raise ValueError(f"order {o.order_id} waits for its trigger {o.stop_price}: move the price instead")
        q = o.remaining if qty is None else D(qty)
        if not D(0) < q <= o.remaining:
            raise ValueError(f"fill of {q} does not fit the {o.remaining} remaining")
        trade = self._fill(o, q, o.price if price is None else D(price), maker=True)
        self.streams.publish()
        return trade

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

    # -- HTTP -------------------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        method, path = request.method.upper(), request.path
        self.requests[(method, path)] += 1
        self.request_times.append((method, path, time.monotonic()))
        raw_query = request.raw_path.partition("?")[2]
        body = await request.text() if request.body_exists else ""
        try:
            params = self._params(raw_query, body)
        except BinanceError as e:
            self.request_log.append((method, path, {}))
            return self._error(e)
        self.request_log.append((method, path, params))
        fault = await self._faults()
        if fault is not None:
            return fault

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
        self.streams.publish()  # what the request changed, to the user data streams

        if (method, path) == ("POST", "/api/v3/order") and self.drop_next_response_after_accept:
            return await self._drop(request)
        return web.json_response(payload, headers={"X-MBX-USED-WEIGHT-1M": str(sum(self.requests.values()))})

    def _too_many_requests(self) -> web.Response:
        msg = ("Too many requests; current limit of IP(127.0.0.1) is 6000 requests per minute. "
               "Please use WebSocket Streams for live updates to avoid polling the API.")
        return web.json_response({"code": -1003, "msg": msg}, status=429,
                                 headers={"Retry-After": str(self.retry_after_seconds)})

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
            "orderTypes": list(m.order_types),
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
        if otype not in ALL_ORDER_TYPES:
            raise BinanceError(400, -1116, "Invalid orderType.")
        if otype not in m.order_types:
            raise BinanceError(400, -2010, "Order type not supported for this symbol.")
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
        stop = self._decimal(params, "stopPrice")
        if otype in TRIGGER_TYPES:
            if stop is None:
                raise _mandatory("stopPrice")
            if stop < m.min_price or stop > m.max_price or stop % m.tick_size != 0:
                raise _filter_failure("PRICE_FILTER")
        elif stop is not None:
            raise _not_required("stopPrice")

        if otype in ("STOP_LOSS", "TAKE_PROFIT"):
            if price is not None:
                raise _not_required("price")
            if tif:
                raise _not_required("timeInForce")
            if qty is None:
                raise _mandatory("quantity")
            tif, exec_price = "GTC", stop
        elif otype == "MARKET":
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
            if otype in ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"):
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
                "quote_qty": quote_qty or D(0), "price": price or D(0), "tif": tif, "last": last,
                "stop": stop or D(0)}

    def _test_order(self, params: Params) -> dict[str, Any]:
        self._validate_new_order(params)
        return {}

    def _new_order(self, params: Params) -> dict[str, Any]:
        req = self._validate_new_order(params)
        m: MarketSpec = req["market"]
        side, otype, qty, price, last = req["side"], req["type"], req["qty"], req["price"], req["last"]
        if any(o.client_order_id == req["cid"] for o in self.open_orders()):
            raise BinanceError(400, -2010, "Duplicate order sent.")
        trigger = otype in TRIGGER_TYPES
        crosses = not trigger and (
            otype == "MARKET" or (side == "BUY" and price >= last) or (side == "SELL" and price <= last))
        if otype == "LIMIT_MAKER" and crosses:
            raise BinanceError(400, -2010, "Order would immediately match and take.")
        probe = SpotOrder(symbol=m.symbol, order_id=0, client_order_id="", side=side, type=otype, time_in_force="",
                          price=price, orig_qty=qty, orig_quote_qty=D(0), time=0, stop_price=req["stop"])
        if trigger and probe.triggers_at(last):
            raise BinanceError(400, -2010, "Order would trigger immediately.")

        # funds: a BUY locks its worst-case cost plus commission in the quote asset, a SELL its base
        if side == "BUY":
            worst = (last if otype == "MARKET" else price or req["stop"]) * qty
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
                          lock_asset=lock_asset, lock_remaining=lock, stop_price=req["stop"],
                          working_time=-1 if trigger else now)
        wallet.lock(lock)
        self.orders[order.order_id] = order
        fills: list[SpotTrade] = []
        if crosses:
            fills.append(self._fill(order, qty, last, maker=False))
        elif order.time_in_force in ("IOC", "FOK") and not trigger:
            order.status = "EXPIRED"
            self._release(order)
        return self._order_ack(order, req["resp_type"], fills, now)

    def _fill(self, order: SpotOrder, qty: Decimal, price: Decimal, *, maker: bool) -> SpotTrade:
        m = self.markets[order.symbol]
        quote_qty = qty * price
        rate = self.maker_fee if maker else self.taker_fee
        commission = (quote_qty * rate).quantize(_EIGHT, ROUND_HALF_UP)
        base, quote = self.balance(m.base), self.balance(m.quote)
        asset = m.quote
        if self.commission_asset == "received" and order.side == "BUY":
            asset, commission = m.base, (qty * rate).quantize(_EIGHT, ROUND_HALF_UP)
        elif self.commission_asset not in ("quote", "received"):
            asset = self.commission_asset
            commission = (quote_qty * rate / self.prices[asset + m.quote]).quantize(_EIGHT, ROUND_HALF_UP)
            self.balance(asset).free -= commission
        in_quote = commission if asset == m.quote else D(0)
        in_base = commission if asset == m.base else D(0)
        if order.side == "BUY":
            self._consume(order, quote_qty + in_quote)
            base.free += qty - in_base
        else:
            self._consume(order, qty)
            quote.free += quote_qty - in_quote
        now = self.now_ms()
        trade = SpotTrade(id=next(self._trade_ids), symbol=order.symbol, order_id=order.order_id, price=price,
                          qty=qty, quote_qty=quote_qty, commission=commission, commission_asset=asset, time=now,
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
        order.lock_remaining = self.balance(order.lock_asset).spend(amount, order.lock_remaining)

    def _release(self, order: SpotOrder) -> None:
        self.balance(order.lock_asset).unlock(order.lock_remaining)
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
            "workingTime": o.working_time,
            "selfTradePreventionMode": "EXPIRE_MAKER",
        })
        if o.type in TRIGGER_TYPES:
            ack["stopPrice"] = fmt(o.stop_price)
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
            "stopPrice": fmt(o.stop_price),
            "icebergQty": fmt(D(0)),
            "time": o.time,
            "updateTime": o.update_time,
            "isWorking": o.is_working,
            "workingTime": o.working_time,
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


# -- websocket streams ------------------------------------------------------------------------------


class BinanceStreams:
    """Binance's websocket streams for one ``LoopbackBinance``, off unless ``enabled``.

    * ``/ws-api/v3``: the WebSocket API; ``userDataStream.subscribe.signature`` (HMAC-signed
      ``apiKey`` + ``timestamp``, what ccxt.pro sends for spot) subscribes the connection to the
      account's ``executionReport`` events, each wrapped as ``{"subscriptionId", "event"}``.
    * ``/ws/{n}``: market streams; ``SUBSCRIBE`` to ``<symbol>@ticker`` (``@miniTicker``) pushes a
      ``24hrTicker`` (``24hrMiniTicker``) at once and after every price change.

    Events come from comparing the order book with what each subscriber was last told, after
    every REST request and every test-side ``set_price``/``fill``: a NEW event for each new
    order, a TRADE event per trade (with its cumulative quantity), then CANCELED/EXPIRED.

    Dials: ``refuse`` answers new connections with 503; ``await drop()`` closes every open
    one (the client sees the stream die). ``connections`` counts accepted connections by kind.
    """

    def __init__(self, server: LoopbackBinance) -> None:
        self.server = server
        self.enabled = False
        self.refuse = False
        self.connections: Counter[str] = Counter()
        self._open: set[web.WebSocketResponse] = set()
        self._users: dict[web.WebSocketResponse, _Subscriber] = {}
        self._tickers: dict[web.WebSocketResponse, _Subscriber] = {}
        self._subscription_ids = itertools.count(0)
        self.user_subscriptions = 0  # accepted userDataStream subscriptions, ever
        self._subscribed = asyncio.Event()

    async def wait_subscribed(self, count: int) -> None:
        """Until ``count`` user data subscriptions have been accepted (a client reconnected)."""
        while self.user_subscriptions < count:
            self._subscribed.clear()
            await self._subscribed.wait()

    async def drop(self) -> None:
        for ws in list(self._open):
            await ws.close(code=1001, message=b"going away")

    async def close(self) -> None:
        await self.drop()

    # -- handlers -------------------------------------------------------------------------------

    async def user_data(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "user", self._on_api_request)

    async def market(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "market", self._on_market_request)

    async def _serve(self, request: web.Request, kind: str,
                     on_request: Callable[[_Subscriber, dict[str, Any]], None]) -> web.StreamResponse:
        if not self.enabled:
            return web.Response(status=404, text="404 Not Found", content_type="text/plain")
        if self.refuse:
            return web.Response(status=503, text="503 Service Unavailable", content_type="text/plain")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connections[kind] += 1
        sub = _Subscriber(ws)
        self._open.add(ws)
        writer = asyncio.get_running_loop().create_task(sub.write())
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    try:
                        on_request(sub, json.loads(msg.data))
                    except (ValueError, AttributeError):
                        sub.send({"error": {"code": -1100, "msg": "malformed request"}})
        finally:
            self._open.discard(ws)
            self._users.pop(ws, None)
            self._tickers.pop(ws, None)
            writer.cancel()
        return ws

    def _on_api_request(self, sub: _Subscriber, req: dict[str, Any]) -> None:
        rid, method, params = req.get("id"), req.get("method"), dict(req.get("params") or {})
        if method != "userDataStream.subscribe.signature":
            sub.send({"id": rid, "status": 400, "error": {"code": -1100, "msg": f"unknown method {method!r}"}})
            return
        error = self._check_signature(params)
        if error is not None:
            sub.send({"id": rid, "status": error.status, "error": {"code": error.code, "msg": error.msg}})
            return
        sub.seen = self._state()  # events from now on
        self._users[sub.ws] = sub
        sub.send({"id": rid, "status": 200, "result": {"subscriptionId": next(self._subscription_ids)}})
        self.user_subscriptions += 1
        self._subscribed.set()

    def _check_signature(self, params: dict[str, Any]) -> BinanceError | None:
        if params.get("apiKey") != self.server.api_key:
            return BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        signature = str(params.pop("signature", ""))
        payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
        if not hmac.compare_digest(binance_signature(self.server.api_secret, payload), signature.lower()):
            return BinanceError(400, -1022, "Signature for this request is not valid.")
        return None

    def _on_market_request(self, sub: _Subscriber, req: dict[str, Any]) -> None:
        if req.get("method") != "SUBSCRIBE":
            sub.send({"id": req.get("id"), "error": {"code": 2, "msg": "Invalid request: unknown method"}})
            return
        streams = [str(s) for s in req.get("params") or []]
        sub.streams.update(streams)
        self._tickers[sub.ws] = sub
        sub.send({"result": None, "id": req.get("id")})
        for spec in self.server.markets.values():
            for channel in _TICKER_CHANNELS:
                if f"{spec.symbol.lower()}@{channel}" in streams:
                    sub.send(self._ticker_event(spec.symbol, channel))

    # -- events -----------------------------------------------------------------------------------

    def publish(self, symbol: str | None = None) -> None:
        """Tell every subscriber what changed: order events, and the ticker of ``symbol``."""
        if not self.enabled:
            return
        if self._users:
            now = self._state()
            for sub in self._users.values():
                for event in self._events(sub.seen, now):
                    sub.send({"subscriptionId": 0, "event": event})
                sub.seen = now
        if symbol is not None:
            for channel in _TICKER_CHANNELS:
                stream = f"{symbol.lower()}@{channel}"
                for sub in self._tickers.values():
                    if stream in sub.streams:
                        sub.send(self._ticker_event(symbol, channel))

    def _state(self) -> dict[int, tuple[str, int]]:
        return {o.order_id: (o.status, len(o.trade_ids)) for o in self.server.orders.values()}

    def _events(self, before: dict[int, tuple[str, int]], now: dict[int, tuple[str, int]]) -> list[dict[str, Any]]:
        trades = {t.id: t for t in self.server.trades}
        events = []
        for oid, (status, n_trades) in sorted(now.items()):
            was_status, was_trades = before.get(oid, ("", 0))
            if (status, n_trades) == (was_status, was_trades):
                continue
            o = self.server.orders[oid]
            if oid not in before:
                events.append(self._report(o, "NEW", "NEW", D(0), None))
            cum = sum((trades[t].qty for t in o.trade_ids[:was_trades]), D(0))
            for tid in o.trade_ids[was_trades:]:
                t = trades[tid]
                cum += t.qty
                events.append(self._report(o, "TRADE", "FILLED" if cum == o.orig_qty else "PARTIALLY_FILLED", cum, t))
            if status in ("CANCELED", "EXPIRED", "REJECTED", "EXPIRED_IN_MATCH"):
                events.append(self._report(o, status, status, o.executed_qty, None))
        return events

    def _report(self, o: SpotOrder, execution: str, status: str, cum: Decimal, t: SpotTrade | None) -> dict[str, Any]:
        now = self.server.now_ms()
        cancel = execution == "CANCELED"
        return {
            "e": "executionReport", "E": now, "s": o.symbol,
            # a cancel carries the cancel request's own id in "c" and the order's in "C"
            "c": "".join(secrets.choice(_ID_ALPHABET) for _ in range(22)) if cancel else o.client_order_id,
            "S": o.side, "o": o.type, "f": o.time_in_force, "q": fmt(o.orig_qty), "p": fmt(o.price),
            "P": fmt(getattr(o, "stop_price", None) or D(0)), "F": fmt(D(0)), "g": -1,
            "C": o.client_order_id if cancel else "", "x": execution, "X": status, "r": "NONE", "i": o.order_id,
            "l": fmt(t.qty if t else D(0)), "z": fmt(cum), "L": fmt(t.price if t else D(0)),
            "n": fmt(t.commission) if t else "0", "N": t.commission_asset if t else None,
            "T": t.time if t else now, "t": t.id if t else -1, "I": 0, "w": status in OPEN_STATUSES,
            "m": t.is_maker if t else False, "M": False, "O": o.time, "Z": fmt(o.cum_quote_qty),
            "Y": fmt(t.quote_qty if t else D(0)), "Q": fmt(o.orig_quote_qty), "W": o.time, "V": "EXPIRE_MAKER",
        }

    def _ticker_event(self, symbol: str, channel: str) -> dict[str, Any]:
        row = self.server._ticker_24hr({"symbol": symbol})
        if channel == "miniTicker":  # what ccxt.pro's watch_ticker subscribes to by default
            return {"e": "24hrMiniTicker", "E": self.server.now_ms(), "s": symbol, "c": row["lastPrice"],
                    "o": row["openPrice"], "h": row["highPrice"], "l": row["lowPrice"], "v": row["volume"],
                    "q": row["quoteVolume"]}
        return {
            "e": "24hrTicker", "E": self.server.now_ms(), "s": symbol, "p": row["priceChange"],
            "P": row["priceChangePercent"], "w": row["weightedAvgPrice"], "x": row["prevClosePrice"],
            "c": row["lastPrice"], "Q": row["lastQty"], "b": row["bidPrice"], "B": row["bidQty"],
            "a": row["askPrice"], "A": row["askQty"], "o": row["openPrice"], "h": row["highPrice"],
            "l": row["lowPrice"], "v": row["volume"], "q": row["quoteVolume"], "O": row["openTime"],
            "C": row["closeTime"], "F": row["firstId"], "L": row["lastId"], "n": row["count"],
        }


_TICKER_CHANNELS = ("ticker", "miniTicker")


@dataclass(eq=False)
class _Subscriber:
    """One websocket connection: messages leave in order through its queue."""

    ws: web.WebSocketResponse
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    seen: dict[int, tuple[str, int]] = field(default_factory=dict)
    streams: set[str] = field(default_factory=set)

    def send(self, message: dict[str, Any]) -> None:
        self.queue.put_nowait(message)

    async def write(self) -> None:
        while True:
            message = await self.queue.get()
            if self.ws.closed:
                return
            await self.ws.send_str(json.dumps(message))


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
    """A real ``ccxt.async_support.binance`` talking to ``server`` (call ``close()`` when done);
    rate limiting off and no exit grace period (see :func:`.common.ccxt_config`)."""
    import ccxt.async_support as ccxt_async

    exchange = ccxt_async.binance(ccxt_config(server, CCXT_OPTIONS, secret=secret, api_key=api_key,
                                              timeout_ms=timeout_ms, options=options, **config))
    return point_ccxt_at(exchange, server.base_url)
