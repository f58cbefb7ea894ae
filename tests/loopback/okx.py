"""A loopback OKX v5 REST server (spot, cash trading) for tests.

``LoopbackOkx`` is an ``aiohttp.web`` server started in-process on ``127.0.0.1`` (port 0) that
speaks enough of OKX's v5 REST API (``/api/v5``) for ccxt's *real* ``ccxt.async_support.okx``
class to load spot markets, trade, cancel, look orders up (by ``ordId`` or ``clOrdId``), read
fills and balances against it:

* ``public/instruments`` (SPOT), ``public/time``, ``market/ticker(s)``;
* ``trade/order`` (POST place, GET details), ``trade/batch-orders`` (ccxt's default for
  placing), ``trade/cancel-order``, ``trade/cancel-batch-orders``, ``trade/orders-pending``,
  ``trade/fills`` and ``trade/fills-history``, ``account/balance``;
* OKX's signature checked the way OKX checks it: ``OK-ACCESS-SIGN`` is the base64 HMAC-SHA256
  of ``timestamp + method + requestPath (+ ?query for GET) + body`` with the secret, next to
  ``OK-ACCESS-KEY``, ``OK-ACCESS-PASSPHRASE`` and an ISO ``OK-ACCESS-TIMESTAMP`` within 30 s;
* OKX's envelopes: ``{"code": "0", "msg": "", "data": [...]}``; a refused order is HTTP 200 with
  ``code "1"`` and the reason in ``data[0].sCode / sMsg``;
* a small matching engine: market orders fill at the last price (taker), crossing limits fill
  at the last price (taker), resting limits fill at their price (maker) when ``set_price``
  crosses them. As on OKX spot, a buy pays its fee in the base currency and a sell in the
  quote currency; fees are negative numbers on the wire (``"fee": "-0.5"``);
* algo orders: TP/SL attached to an order (``attachAlgoOrds`` with ``attachAlgoClOrdId``) become an
  ``oco`` (both prices) or ``conditional`` algo order, sized to the fill, once that order has filled
  completely (OKX attaches them to a fully filled order only); ``trade/order-algo`` (POST place:
  ``conditional``, ``oco``, ``move_order_stop``; GET details), ``trade/orders-algo-pending``,
  ``trade/cancel-algos``. ``set_price`` fires them: a TP/SL when the price reaches either trigger
  (the whole algo order is then done, ``actualSide`` says which), a trailing stop when the price
  comes back from its best since activation by ``callbackRatio`` or ``callbackSpread``. Firing
  places a market order (``ordId`` of the algo order);
* the fault dials of the Binance loopback: ``status_429_next_n``, ``status_5xx_next_n``,
  ``delay_seconds`` and ``drop_next_response_after_accept`` (with ``drop_mode``).

Everything is ``Decimal`` internally and goes over the wire as a plain decimal string.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import itertools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, ROUND_UP, Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from .common import DEFAULT_BALANCES, Funds, LoopbackServer, ccxt_config, crossed

__all__ = [
    "CCXT_OPTIONS",
    "LoopbackOkx",
    "OkxError",
    "OkxInstrument",
    "make_ccxt_okx",
    "okx_signature",
]

D = Decimal
_FEE_PLACES = D("1e-12")
_CLORDID_RE = re.compile(r"^[A-Za-z0-9]{1,32}$")
_OPEN = frozenset({"live", "partially_filled"})

#: ccxt options that keep ``load_markets`` to one ``GET /api/v5/public/instruments?instType=SPOT``
#: (pair them with ``has['fetchCurrencies'] = False``, which :func:`make_ccxt_okx` sets).
CCXT_OPTIONS: dict[str, Any] = {
    "fetchMarkets": {"types": ["spot"]},
    "fetchCurrencies": False,
    "adjustForTimeDifference": False,
}


def fmt(value: Decimal) -> str:
    """OKX's wire format: a plain decimal string without exponent or trailing zeros."""
    if value == 0:
        return "0"
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def okx_signature(secret: str, prehash: str) -> str:
    """Base64 of the HMAC-SHA256 of ``timestamp + METHOD + requestPath + body``."""
    return base64.b64encode(hmac.new(secret.encode(), prehash.encode(), hashlib.sha256).digest()).decode()


# -- model ------------------------------------------------------------------------------------------


@dataclass
class OkxInstrument:
    inst_id: str
    base: str
    quote: str
    tick_sz: Decimal
    lot_sz: Decimal
    min_sz: Decimal
    max_lmt_sz: Decimal = D("1000000")
    max_mkt_sz: Decimal = D("1000000")
    state: str = "live"


DEFAULT_INSTRUMENTS: tuple[OkxInstrument, ...] = (
    OkxInstrument("BTC-USDT", "BTC", "USDT", tick_sz=D("0.1"), lot_sz=D("0.00001"), min_sz=D("0.00001")),
    OkxInstrument("ETH-USDT", "ETH", "USDT", tick_sz=D("0.01"), lot_sz=D("0.0001"), min_sz=D("0.001")),
)
DEFAULT_PRICES: dict[str, Decimal] = {"BTC-USDT": D("50000"), "ETH-USDT": D("3000")}


def _alias(name: str) -> property:
    return property(lambda self: getattr(self, name), lambda self, value: setattr(self, name, value))


class Wallet(Funds):
    """A currency's funds under OKX's names: ``avail`` (``availBal``) is ``free``, ``frozen``
    (``frozenBal``) is ``locked``."""

    avail = _alias("free")
    frozen = _alias("locked")


@dataclass
class OkxOrder:
    inst_id: str
    ord_id: str
    cl_ord_id: str
    side: str  # buy | sell
    ord_type: str  # market | limit | post_only | ioc | fok
    px: Decimal | None
    sz: Decimal
    c_time: int
    state: str = "live"
    acc_fill_sz: Decimal = D(0)
    fill_notional: Decimal = D(0)
    fee: Decimal = D(0)  # negative: a charge
    fee_ccy: str = ""
    u_time: int = 0
    lock_ccy: str = ""
    lock_remaining: Decimal = D(0)
    cancel_source: str = ""
    last_trade: OkxTrade | None = None
    attach: dict[str, Any] | None = None  # attachAlgoOrds[0]: the TP/SL to create once filled

    @property
    def is_open(self) -> bool:
        return self.state in _OPEN

    @property
    def remaining(self) -> Decimal:
        return self.sz - self.acc_fill_sz


@dataclass
class OkxAlgo:
    """An algo order: TP/SL (``conditional`` one price, ``oco`` both) or a trailing stop."""

    inst_id: str
    algo_id: str
    algo_cl_ord_id: str
    side: str
    ord_type: str  # conditional | oco | move_order_stop
    sz: Decimal
    c_time: int
    tgt_ccy: str = ""
    tp_trigger_px: Decimal | None = None
    sl_trigger_px: Decimal | None = None
    callback_ratio: Decimal | None = None
    callback_spread: Decimal | None = None
    active_px: Decimal | None = None
    best: Decimal | None = None  # trailing: best price since activation (None: not active yet)
    state: str = "live"  # live | effective | canceled | order_failed
    ord_id: str = ""  # the market order it placed when it fired
    actual_side: str = ""  # tp | sl, once fired
    actual_px: Decimal | None = None
    u_time: int = 0

    @property
    def move_trigger_px(self) -> Decimal | None:
        if self.best is None:
            return None
        if self.callback_spread is not None:
            return self.best - self.callback_spread if self.side == "sell" else self.best + self.callback_spread
        ratio = self.callback_ratio or D(0)
        return self.best * (1 - ratio) if self.side == "sell" else self.best * (1 + ratio)


@dataclass
class OkxTrade:
    trade_id: str
    inst_id: str
    ord_id: str
    cl_ord_id: str
    side: str
    px: Decimal
    sz: Decimal
    fee: Decimal  # negative: a charge
    fee_ccy: str
    maker: bool
    ts: int
    bill_id: str = ""


class OkxError(Exception):
    """An error answer: ``code`` in the envelope; for order operations also ``sCode``/``sMsg``."""

    def __init__(self, code: str, msg: str, *, status: int = 200, s_code: str | None = None) -> None:
        super().__init__(f"{status} {code} {msg}")
        self.status = status
        self.code = code
        self.msg = msg
        self.s_code = s_code


def _order_failed(s_code: str, msg: str) -> OkxError:
    """OKX's shape for a refused order: HTTP 200, code "1", the reason in data[0]."""
    return OkxError("1", msg, s_code=s_code)


Params = dict[str, Any]
Handler = Callable[[Params], list[dict[str, Any]]]


# -- server -----------------------------------------------------------------------------------------


class LoopbackOkx(LoopbackServer):
    """OKX v5 spot REST on 127.0.0.1, in-process. See the module docstring.

    Fault dials (plain attributes, set them at any time; see :class:`.common.LoopbackServer`),
    applied after the request is counted:

    * ``status_429_next_n``: HTTP 429 ``{"code": "50011", "msg": "Too Many Requests"}``.
    * ``status_5xx_next_n``: ``status_5xx_code`` (503) with a plain-text body.
    * ``delay_seconds``: every request waits this long first.
    * ``drop_next_response_after_accept``: the next accepted place-order request is booked (and
      matched) but its answer never comes (``drop_mode`` "hang" or "reset").
    * ``time_offset_ms``: the server clock's offset from the local clock (for ``50102``).
    * ``refuse_algos``: an ``sMsg``; while set, every algo order (attached TP/SL included) is
      refused with ``sCode`` 51000, as an exchange that does not offer them on the market would.
    """

    def __init__(
        self,
        *,
        api_key: str = "loopback-okx-key",
        api_secret: str = "loopback-okx-secret",
        passphrase: str = "loopback-passphrase",
        instruments: Iterable[OkxInstrument] = DEFAULT_INSTRUMENTS,
        prices: dict[str, Decimal] | None = None,
        balances: dict[str, Decimal] | None = None,
        taker_fee: Decimal = D("0.001"),
        maker_fee: Decimal = D("0.0008"),
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(host)
        self.api_key = api_key
        self.api_secret = api_secret
        self.passphrase = passphrase
        # copies: a test that edits an instrument must not change DEFAULT_INSTRUMENTS for later tests
        self.instruments: dict[str, OkxInstrument] = {i.inst_id: copy.deepcopy(i) for i in instruments}
        self.prices: dict[str, Decimal] = dict(DEFAULT_PRICES if prices is None else prices)
        start = DEFAULT_BALANCES if balances is None else balances
        self.wallets: dict[str, Wallet] = {c: Wallet(free=D(v)) for c, v in start.items()}
        self.taker_fee = taker_fee
        self.maker_fee = maker_fee
        self.refuse_algos: str | None = None

        self.orders: dict[str, OkxOrder] = {}
        self.trades: list[OkxTrade] = []
        self.algos: dict[str, OkxAlgo] = {}
        self._algo_ids = itertools.count(700_000_000_001)
        self._ord_ids = itertools.count(600_000_000_001)
        self._trade_ids = itertools.count(300_001)
        self._bill_ids = itertools.count(900_000_001)

        p = "/api/v5/"
        self._routes: dict[tuple[str, str], tuple[Handler, bool]] = {
            ("GET", p + "public/time"): (self._time, False),
            ("GET", p + "public/instruments"): (self._instruments, False),
            ("GET", p + "market/ticker"): (self._ticker, False),
            ("GET", p + "market/tickers"): (self._tickers, False),
            ("POST", p + "trade/order"): (self._place_one, True),
            ("POST", p + "trade/batch-orders"): (self._place_batch, True),
            ("GET", p + "trade/order"): (self._order_details, True),
            ("POST", p + "trade/cancel-order"): (self._cancel_one, True),
            ("POST", p + "trade/cancel-batch-orders"): (self._cancel_batch, True),
            ("GET", p + "trade/orders-pending"): (self._orders_pending, True),
            ("GET", p + "trade/fills"): (self._fills, True),
            ("GET", p + "trade/fills-history"): (self._fills, True),
            ("GET", p + "account/balance"): (self._balance, True),
            ("POST", p + "trade/order-algo"): (self._place_algo, True),
            ("GET", p + "trade/order-algo"): (self._algo_details, True),
            ("GET", p + "trade/orders-algo-pending"): (self._algos_pending, True),
            ("POST", p + "trade/cancel-algos"): (self._cancel_algos, True),
        }
        self._placing = {p + "trade/order", p + "trade/batch-orders"}

    # -- test-side controls -----------------------------------------------------------------------

    def wallet(self, ccy: str) -> Wallet:
        return self.wallets.setdefault(ccy, Wallet())

    def open_orders(self, inst_id: str | None = None) -> list[OkxOrder]:
        return [o for o in self.orders.values() if o.is_open and (inst_id is None or o.inst_id == inst_id)]

    def order_by_client_id(self, cl_ord_id: str) -> OkxOrder | None:
        found = [o for o in self.orders.values() if o.cl_ord_id == cl_ord_id]
        return found[-1] if found else None

    def open_algos(self, inst_id: str | None = None) -> list[OkxAlgo]:
        return [a for a in self.algos.values() if a.state == "live" and (inst_id is None or a.inst_id == inst_id)]

    def algo_by_client_id(self, algo_cl_ord_id: str) -> OkxAlgo | None:
        found = [a for a in self.algos.values() if a.algo_cl_ord_id == algo_cl_ord_id]
        return found[-1] if found else None

    def set_price(self, inst_id: str, price: Decimal | str | int) -> list[OkxTrade]:
        """Move the last price; resting limits it crosses fill in full at their price (maker),
        then the algo orders it reaches fire (their market orders' trades are returned too)."""
        price = D(price)
        if inst_id not in self.instruments:
            raise KeyError(f"no instrument {inst_id!r}")
        self.prices[inst_id] = price
        made = []
        for o in list(self.orders.values()):
            if o.inst_id == inst_id and o.is_open and o.px is not None and crossed(o.side == "buy", o.px, price):
                made.append(self._fill(o, o.remaining, o.px, maker=True))
        for a in self.open_algos(inst_id):
            if (side := self._algo_fires(a, price)) is not None:
                made += self._fire(a, side)
        return made

    def fill(self, order: OkxOrder, sz: Decimal | str | None = None) -> OkxTrade:
        """Fill a resting order as maker at its price: ``sz`` (default: all that remains)."""
        if not order.is_open or order.px is None:
            raise ValueError(f"order {order.ord_id} is not resting")
        qty = order.remaining if sz is None else D(sz)
        if not D(0) < qty <= order.remaining:
            raise ValueError(f"fill of {qty} does not fit the {order.remaining} remaining")
        return self._fill(order, qty, order.px, maker=True)

    # -- HTTP -------------------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        method, path = request.method.upper(), request.path
        self.requests[(method, path)] += 1
        body = await request.text() if request.body_exists else ""
        self.request_log.append((method, path, body or request.query_string))
        fault = await self._faults()
        if fault is not None:
            return fault
        route = self._routes.get((method, path))
        if route is None:
            return web.json_response({"msg": "Not Found", "code": "404"}, status=404)
        handler, signed = route
        try:
            if signed:
                self._authenticate(request, method, body)
            params: Any = dict(parse_qsl(request.query_string, keep_blank_values=True))
            if method == "POST":
                try:
                    params = json.loads(body) if body else {}
                except ValueError:
                    raise OkxError("50002", "Json data format error", status=400) from None
            data = handler(params)
        except OkxError as e:
            return self._error(e)
        if path in self._placing and self.drop_next_response_after_accept:
            return await self._drop(request)
        now = str(self.now_ms() * 1000)
        return web.json_response({"code": "0", "msg": "", "data": data, "inTime": now, "outTime": now})

    def _too_many_requests(self) -> web.Response:
        return web.json_response({"msg": "Too Many Requests", "code": "50011"}, status=429)

    @staticmethod
    def _error(e: OkxError) -> web.Response:
        data: list[dict[str, str]] = []
        if e.s_code is not None:
            data = [{"clOrdId": "", "ordId": "", "sCode": e.s_code, "sMsg": e.msg, "tag": "", "ts": ""}]
            return web.json_response({"code": e.code, "msg": "All operations failed", "data": data}, status=e.status)
        return web.json_response({"code": e.code, "msg": e.msg, "data": data}, status=e.status)

    def _authenticate(self, request: web.Request, method: str, body: str) -> None:
        h = request.headers
        key, sign, ts, phrase = (h.get(k) for k in ("OK-ACCESS-KEY", "OK-ACCESS-SIGN", "OK-ACCESS-TIMESTAMP",
                                                     "OK-ACCESS-PASSPHRASE"))
        if not key:
            raise OkxError("50103", 'Request header "OK-ACCESS-KEY" cannot be empty.', status=401)
        if not phrase:
            raise OkxError("50104", 'Request header "OK-ACCESS-PASSPHRASE" cannot be empty.', status=401)
        if not sign:
            raise OkxError("50106", 'Request header "OK-ACCESS-SIGN" cannot be empty.', status=401)
        if not ts:
            raise OkxError("50107", 'Request header "OK-ACCESS-TIMESTAMP" cannot be empty.', status=401)
        if key != self.api_key:
            raise OkxError("50111", "Invalid OK-ACCESS-KEY.", status=401)
        try:
            sent_ms = int(datetime.fromisoformat(ts).timestamp() * 1000)
        except ValueError:
            raise OkxError("50112", "Invalid OK-ACCESS-TIMESTAMP.", status=401) from None
        if abs(self.now_ms() - sent_ms) > 30_000:
            raise OkxError("50102", "Timestamp request expired.", status=401)
        if phrase != self.passphrase:
            raise OkxError("50105", 'Request header "OK-ACCESS-PASSPHRASE" incorrect.', status=401)
        # requestPath keeps the query exactly as sent (GET); a POST signs its body instead
        prehash = ts + method + request.raw_path + (body if method != "GET" else "")
        if not hmac.compare_digest(okx_signature(self.api_secret, prehash), sign):
            raise OkxError("50113", "Invalid Sign", status=401)

    # -- helpers --------------------------------------------------------------------------------

    def _instrument(self, inst_id: str | None) -> OkxInstrument:
        if not inst_id:
            raise OkxError("50014", "Parameter instId can not be empty.", status=400)
        inst = self.instruments.get(inst_id)
        if inst is None:
            raise OkxError("51001", "Instrument ID does not exist.")
        return inst

    @staticmethod
    def _decimal(params: Params, name: str) -> Decimal | None:
        raw = params.get(name)
        if raw is None or raw == "":
            return None
        try:
            value = D(str(raw))
        except ArithmeticError:
            raise _order_failed("51000", f"Parameter {name} error") from None
        if not value.is_finite() or value <= 0:
            raise _order_failed("51000", f"Parameter {name} error")
        return value

    def _find(self, params: Params) -> OkxOrder | None:
        inst = self._instrument(params.get("instId"))
        ord_id, cl = params.get("ordId"), params.get("clOrdId")
        if not ord_id and not cl:
            raise OkxError("51000", "Parameter ordId or clOrdId error")
        if ord_id:
            found = self.orders.get(str(ord_id))
        else:
            found = self.order_by_client_id(str(cl))
        return found if found is not None and found.inst_id == inst.inst_id else None

    # -- public ---------------------------------------------------------------------------------

    def _time(self, params: Params) -> list[dict[str, Any]]:
        return [{"ts": str(self.now_ms())}]

    def _instruments(self, params: Params) -> list[dict[str, Any]]:
        if params.get("instType") != "SPOT":
            return []  # only spot is listed here
        return [{
            "instType": "SPOT", "instId": i.inst_id, "uly": "", "instFamily": "", "category": "1",
            "baseCcy": i.base, "quoteCcy": i.quote, "settleCcy": "", "ctVal": "", "ctMult": "", "ctValCcy": "",
            "optType": "", "stk": "", "listTime": "1606468572000", "expTime": "", "lever": "",
            "tickSz": fmt(i.tick_sz), "lotSz": fmt(i.lot_sz), "minSz": fmt(i.min_sz), "ctType": "", "alias": "",
            "state": i.state, "maxLmtSz": fmt(i.max_lmt_sz), "maxMktSz": fmt(i.max_mkt_sz),
            "maxTwapSz": "", "maxIcebergSz": "", "maxTriggerSz": "", "maxStopSz": "",
        } for i in self.instruments.values() if params.get("instId") in (None, i.inst_id)]

    def _ticker_row(self, inst: OkxInstrument) -> dict[str, Any]:
        last = fmt(self.prices[inst.inst_id])
        vol = sum((t.sz for t in self.trades if t.inst_id == inst.inst_id), D(0))
        return {"instType": "SPOT", "instId": inst.inst_id, "last": last, "lastSz": "0", "askPx": last, "askSz": "1000",
                "bidPx": last, "bidSz": "1000", "open24h": last, "high24h": last, "low24h": last,
                "volCcy24h": "0", "vol24h": fmt(vol), "ts": str(self.now_ms()), "sodUtc0": last, "sodUtc8": last}

    def _ticker(self, params: Params) -> list[dict[str, Any]]:
        return [self._ticker_row(self._instrument(params.get("instId")))]

    def _tickers(self, params: Params) -> list[dict[str, Any]]:
        return [self._ticker_row(i) for i in self.instruments.values()]

    # -- trading --------------------------------------------------------------------------------

    def _place_one(self, params: Params) -> list[dict[str, Any]]:
        if not isinstance(params, dict):
            raise OkxError("50002", "Json data format error", status=400)
        return [self._place(params)]

    def _place_batch(self, params: Params) -> list[dict[str, Any]]:
        if not isinstance(params, list) or not 1 <= len(params) <= 20:
            raise OkxError("50002", "Json data format error", status=400)
        if len(params) > 1:
            raise OkxError("50000", "this loopback places one order per batch", status=400)
        return [self._place(params[0])]

    def _place(self, p: Params) -> dict[str, Any]:
        inst = self._instrument(p.get("instId"))
        side, ord_type = p.get("side"), p.get("ordType")
        if side not in ("buy", "sell"):
            raise _order_failed("51000", "Parameter side error")
        if ord_type not in ("market", "limit", "post_only", "ioc", "fok"):
            raise _order_failed("51000", "Parameter ordType error")
        if p.get("tdMode") != "cash":
            raise _order_failed("51000", "Parameter tdMode error")
        cl = str(p.get("clOrdId") or "")
        if cl and not _CLORDID_RE.match(cl):
            raise _order_failed("51000", "Parameter clOrdId error")
        if cl and any(o.cl_ord_id == cl for o in self.open_orders()):
            raise _order_failed("51016", "Duplicated client order ID")
        sz = self._decimal(p, "sz")
        if sz is None:
            raise _order_failed("51000", "Parameter sz error")
        last = self.prices[inst.inst_id]
        px = self._decimal(p, "px")
        if ord_type == "market":
            if px is not None:
                raise _order_failed("51000", "Parameter px error")
            # a market buy's sz is in the quote currency unless tgtCcy says base_ccy (ccxt does)
            if side == "buy" and p.get("tgtCcy", "quote_ccy") == "quote_ccy":
                sz = (sz / last // inst.lot_sz) * inst.lot_sz
        else:
            if px is None:
                raise _order_failed("51000", "Parameter px error")
            if px % inst.tick_sz != 0:
                raise _order_failed("51000", "Parameter px error")
        if sz % inst.lot_sz != 0:
            raise _order_failed("51121", "Order quantity must be a multiple of the lot size.")
        if sz < inst.min_sz:
            raise _order_failed("51020", "Your order should meet or exceed the minimum order amount.")
        if sz > (inst.max_mkt_sz if ord_type == "market" else inst.max_lmt_sz):
            raise _order_failed("51202", "Market order amount exceeds the maximum amount.")
        if inst.state != "live":
            raise _order_failed("51001", "Instrument ID does not exist.")
        crosses = ord_type == "market" or (px is not None and (px >= last if side == "buy" else px <= last))
        # funds: a buy freezes its worst-case cost in the quote currency, a sell its base
        if side == "buy":
            lock_ccy = inst.quote
            lock = ((last if ord_type == "market" else px) * sz).quantize(_FEE_PLACES, ROUND_UP)  # type: ignore[operator]
        else:
            lock_ccy, lock = inst.base, sz
        wallet = self.wallet(lock_ccy)
        if wallet.avail < lock:
            raise _order_failed("51008", f"Order failed. Insufficient {lock_ccy} balance in account.")
        attach = self._attachment(p, inst)
        now = self.now_ms()
        order = OkxOrder(inst_id=inst.inst_id, ord_id=str(next(self._ord_ids)), cl_ord_id=cl, side=side,
                         ord_type=ord_type, px=px, sz=sz, c_time=now, u_time=now, lock_ccy=lock_ccy,
                         lock_remaining=lock, fee_ccy=inst.base if side == "buy" else inst.quote, attach=attach)
        wallet.lock(lock)
        self.orders[order.ord_id] = order
        if ord_type == "post_only" and crosses:
            self._close(order, "canceled", "31")  # OKX cancels a post-only order that would take
        elif crosses:
            self._fill(order, sz, last, maker=False)
        elif ord_type in ("ioc", "fok"):
            self._close(order, "canceled", "14" if ord_type == "ioc" else "15")
        return {"clOrdId": cl, "ordId": order.ord_id, "tag": "", "ts": str(now), "sCode": "0",
                "sMsg": "Order placed"}

    def _fill(self, o: OkxOrder, qty: Decimal, price: Decimal, *, maker: bool) -> OkxTrade:
        inst = self.instruments[o.inst_id]
        rate = self.maker_fee if maker else self.taker_fee
        notional = qty * price
        base, quote = self.wallet(inst.base), self.wallet(inst.quote)
        if o.side == "buy":  # OKX spot: a buy pays its fee in what it receives, the base
            fee = (qty * rate).quantize(_FEE_PLACES, ROUND_HALF_UP)
            self._consume(o, notional)
            base.avail += qty - fee
        else:
            fee = (notional * rate).quantize(_FEE_PLACES, ROUND_HALF_UP)
            self._consume(o, qty)
            quote.avail += notional - fee
        now = self.now_ms()
        trade = OkxTrade(trade_id=str(next(self._trade_ids)), inst_id=o.inst_id, ord_id=o.ord_id,
                         cl_ord_id=o.cl_ord_id, side=o.side, px=price, sz=qty, fee=-fee, fee_ccy=o.fee_ccy,
                         maker=maker, ts=now, bill_id=str(next(self._bill_ids)))
        self.trades.append(trade)
        o.acc_fill_sz += qty
        o.fill_notional += notional
        o.fee -= fee
        o.u_time = now
        o.last_trade = trade
        if o.acc_fill_sz == o.sz:
            self._close(o, "filled")
            if o.attach is not None:
                self._attach_filled(o)
        else:
            o.state = "partially_filled"
        return trade

    def _consume(self, o: OkxOrder, amount: Decimal) -> None:
        o.lock_remaining = self.wallet(o.lock_ccy).spend(amount, o.lock_remaining)

    def _close(self, o: OkxOrder, state: str, cancel_source: str = "") -> None:
        o.state = state
        o.cancel_source = cancel_source
        o.u_time = self.now_ms()
        self.wallet(o.lock_ccy).unlock(o.lock_remaining)
        o.lock_remaining = D(0)

    def _order_details(self, params: Params) -> list[dict[str, Any]]:
        found = self._find(params)
        if found is None:
            raise OkxError("51603", "Order does not exist")
        return [self._order_json(found)]

    def _cancel(self, p: Params) -> dict[str, Any]:
        found = self._find(p)
        if found is None:
            raise _order_failed("51400", "Order cancellation failed as the order has been filled, canceled or does not exist.")
        if found.state == "filled":
            raise _order_failed("51402", "Order cancellation failed as the order has been completed.")
        if found.state == "canceled":
            raise _order_failed("51401", "Order cancellation failed as the order has been canceled.")
        self._close(found, "canceled", "1")
        return {"clOrdId": found.cl_ord_id, "ordId": found.ord_id, "ts": str(self.now_ms()), "sCode": "0", "sMsg": ""}

    def _cancel_one(self, params: Params) -> list[dict[str, Any]]:
        return [self._cancel(params)]

    def _cancel_batch(self, params: Params) -> list[dict[str, Any]]:
        if not isinstance(params, list):
            raise OkxError("50002", "Json data format error", status=400)
        return [self._cancel(p) for p in params]

    def _orders_pending(self, params: Params) -> list[dict[str, Any]]:
        inst_type = params.get("instType")
        if inst_type not in (None, "SPOT"):
            return []
        rows = self.open_orders(params.get("instId") or None)
        rows.sort(key=lambda o: int(o.ord_id), reverse=True)  # newest first, as OKX pages them
        limit = int(params.get("limit") or 100)
        return [self._order_json(o) for o in rows[:limit]]

    def _fills(self, params: Params) -> list[dict[str, Any]]:
        inst_id, ord_id = params.get("instId"), params.get("ordId")
        rows = [t for t in self.trades if (not inst_id or t.inst_id == inst_id) and (not ord_id or t.ord_id == ord_id)]
        rows.reverse()  # newest first
        if params.get("after"):  # the page of rows older than this bill id
            rows = [t for t in rows if int(t.bill_id) < int(params["after"])]
        limit = int(params.get("limit") or 100)
        return [self._trade_json(t) for t in rows[:limit]]

    def _balance(self, params: Params) -> list[dict[str, Any]]:
        wanted = set(str(params["ccy"]).split(",")) if params.get("ccy") else None
        now = str(self.now_ms())
        details = [{
            "ccy": c, "eq": fmt(w.total), "cashBal": fmt(w.total), "availBal": fmt(w.avail),
            "frozenBal": fmt(w.frozen), "ordFrozen": fmt(w.frozen), "uTime": now,
        } for c, w in sorted(self.wallets.items()) if wanted is None or c in wanted]
        return [{"adjEq": "", "details": details, "imr": "", "isoEq": "", "mgnRatio": "", "mmr": "",
                 "notionalUsd": "", "ordFroz": "", "totalEq": "", "uTime": now}]

    # -- algo orders ----------------------------------------------------------------------------

    def _attachment(self, p: Params, inst: OkxInstrument) -> dict[str, Any] | None:
        """The TP/SL of ``attachAlgoOrds`` (one entry, market exits), checked at placement."""
        attached = p.get("attachAlgoOrds")
        if not attached:
            return None
        if self.refuse_algos:
            raise _order_failed("51000", self.refuse_algos)
        if not isinstance(attached, list) or len(attached) != 1 or not isinstance(attached[0], dict):
            raise _order_failed("51000", "Parameter attachAlgoOrds error")
        a = attached[0]
        tp, sl = self._decimal(a, "tpTriggerPx"), self._decimal(a, "slTriggerPx")
        if tp is None and sl is None:
            raise _order_failed("51000", "Parameter tpTriggerPx or slTriggerPx error")
        for name, px in (("tpTriggerPx", tp), ("slTriggerPx", sl)):
            if px is not None and px % inst.tick_sz:
                raise _order_failed("51000", f"Parameter {name} error")
        for name in ("tpOrdPx", "slOrdPx"):
            if a.get(name) not in (None, "", "-1"):
                raise _order_failed("51000", f"Parameter {name} error")  # limit exits: not served here
        cl = str(a.get("attachAlgoClOrdId") or "")
        if cl and not _CLORDID_RE.match(cl):
            raise _order_failed("51000", "Parameter attachAlgoClOrdId error")
        return {"tp": tp, "sl": sl, "cl": cl}

    def _attach_filled(self, o: OkxOrder) -> None:
        spec = o.attach or {}
        tp, sl = spec.get("tp"), spec.get("sl")
        algo = OkxAlgo(inst_id=o.inst_id, algo_id=str(next(self._algo_ids)), algo_cl_ord_id=spec.get("cl", ""),
                       side="sell" if o.side == "buy" else "buy", ord_type="oco" if tp and sl else "conditional",
                       sz=o.acc_fill_sz, c_time=self.now_ms(), tgt_ccy="base_ccy", tp_trigger_px=tp, sl_trigger_px=sl)
        algo.u_time = algo.c_time
        self.algos[algo.algo_id] = algo

    def _algo_fires(self, a: OkxAlgo, price: Decimal) -> str | None:
        """Which side of ``a`` this price fires ("tp", "sl", "move"), if any."""
        sell = a.side == "sell"
        if a.ord_type == "move_order_stop":
            if a.best is None:
                if a.active_px is None or (price >= a.active_px if sell else price <= a.active_px):
                    a.best = price
                return None
            a.best = max(a.best, price) if sell else min(a.best, price)
            trigger = a.move_trigger_px
            assert trigger is not None
            return "move" if (price <= trigger if sell else price >= trigger) else None
        if a.tp_trigger_px is not None and (price >= a.tp_trigger_px if sell else price <= a.tp_trigger_px):
            return "tp"
        if a.sl_trigger_px is not None and (price <= a.sl_trigger_px if sell else price >= a.sl_trigger_px):
            return "sl"
        return None

    def _fire(self, a: OkxAlgo, which: str) -> list[OkxTrade]:
        """A triggered algo order places its market order; the algo order is then done."""
        a.u_time = self.now_ms()
        a.actual_px = self.prices[a.inst_id]
        a.actual_side = which if which in ("tp", "sl") else ""
        try:
            placed = self._place({"instId": a.inst_id, "tdMode": "cash", "side": a.side, "ordType": "market",
                                  "sz": fmt(a.sz), "tgtCcy": "base_ccy"})
        except OkxError:
            a.state = "order_failed"
            return []
        a.state, a.ord_id = "effective", placed["ordId"]
        trade = self.orders[a.ord_id].last_trade
        return [trade] if trade is not None else []

    def _place_algo(self, p: Params) -> list[dict[str, Any]]:
        if not isinstance(p, dict):
            raise OkxError("50002", "Json data format error", status=400)
        inst = self._instrument(p.get("instId"))
        if self.refuse_algos:
            raise _order_failed("51000", self.refuse_algos)
        side, ord_type = p.get("side"), p.get("ordType")
        if side not in ("buy", "sell"):
            raise _order_failed("51000", "Parameter side error")
        if ord_type not in ("conditional", "oco", "move_order_stop"):
            raise _order_failed("51000", "Parameter ordType error")
        if p.get("tdMode") != "cash":
            raise _order_failed("51000", "Parameter tdMode error")
        cl = str(p.get("algoClOrdId") or "")
        if cl and not _CLORDID_RE.match(cl):
            raise _order_failed("51000", "Parameter algoClOrdId error")
        if cl and any(a.algo_cl_ord_id == cl for a in self.open_algos()):
            raise _order_failed("51016", "Duplicated client order ID")
        sz = self._decimal(p, "sz")
        if sz is None or sz % inst.lot_sz or sz < inst.min_sz:
            raise _order_failed("51000", "Parameter sz error")
        algo = OkxAlgo(inst_id=inst.inst_id, algo_id=str(next(self._algo_ids)), algo_cl_ord_id=cl, side=side,
                       ord_type=ord_type, sz=sz, c_time=self.now_ms(), tgt_ccy=str(p.get("tgtCcy") or ""))
        if ord_type == "move_order_stop":
            ratio, spread = self._decimal(p, "callbackRatio"), self._decimal(p, "callbackSpread")
            if (ratio is None) == (spread is None):
                raise _order_failed("51000", "Parameter callbackRatio or callbackSpread error")
            if ratio is not None and not ratio < 1:
                raise _order_failed("51000", "Parameter callbackRatio error")
            algo.callback_ratio, algo.callback_spread = ratio, spread
            algo.active_px = self._decimal(p, "activePx")
            self._algo_fires(algo, self.prices[inst.inst_id])  # activates at once without activePx
        else:
            algo.tp_trigger_px, algo.sl_trigger_px = self._decimal(p, "tpTriggerPx"), self._decimal(p, "slTriggerPx")
            both = algo.tp_trigger_px is not None and algo.sl_trigger_px is not None
            if (ord_type == "oco") != both or (algo.tp_trigger_px is None and algo.sl_trigger_px is None):
                raise _order_failed("51000", "Parameter tpTriggerPx or slTriggerPx error")
        algo.u_time = algo.c_time
        self.algos[algo.algo_id] = algo
        return [{"algoId": algo.algo_id, "algoClOrdId": cl, "clOrdId": "", "sCode": "0", "sMsg": "", "tag": ""}]

    def _find_algo(self, p: Params) -> OkxAlgo | None:
        algo_id, cl = p.get("algoId"), p.get("algoClOrdId")
        if not algo_id and not cl:
            raise OkxError("51000", "Parameter algoId or algoClOrdId error")
        found = self.algos.get(str(algo_id)) if algo_id else self.algo_by_client_id(str(cl))
        inst_id = p.get("instId")
        return found if found is not None and inst_id in (None, "", found.inst_id) else None

    def _algo_details(self, params: Params) -> list[dict[str, Any]]:
        found = self._find_algo(params)
        if found is None:
            raise OkxError("51603", "Order does not exist")
        return [self._algo_json(found)]

    def _algos_pending(self, params: Params) -> list[dict[str, Any]]:
        if not params.get("ordType"):
            raise OkxError("51000", "Parameter ordType error")
        kinds = set(str(params["ordType"]).split(","))
        rows = [a for a in self.open_algos(params.get("instId") or None) if a.ord_type in kinds]
        rows.sort(key=lambda a: int(a.algo_id), reverse=True)
        return [self._algo_json(a) for a in rows[:int(params.get("limit") or 100)]]

    def _cancel_algos(self, params: Params) -> list[dict[str, Any]]:
        if not isinstance(params, list) or not params:
            raise OkxError("50002", "Json data format error", status=400)
        found = [self._find_algo(p) for p in params]
        if any(a is None or a.state != "live" for a in found):
            raise _order_failed("51400", "Cancellation failed as the order has been filled, canceled or does not exist.")
        for a in found:
            assert a is not None
            a.state, a.u_time = "canceled", self.now_ms()
        return [{"algoId": a.algo_id, "algoClOrdId": a.algo_cl_ord_id, "sCode": "0", "sMsg": ""}
                for a in found if a is not None]

    # -- wire shapes ------------------------------------------------------------------------------

    @staticmethod
    def _algo_json(a: OkxAlgo) -> dict[str, Any]:
        def px(value: Decimal | None) -> str:
            return fmt(value) if value is not None else ""

        move = a.move_trigger_px
        return {
            "instType": "SPOT", "instId": a.inst_id, "ccy": "", "ordId": a.ord_id,
            "ordIdList": [a.ord_id] if a.ord_id else [], "algoId": a.algo_id, "clOrdId": "",
            "algoClOrdId": a.algo_cl_ord_id, "sz": fmt(a.sz), "closeFraction": "", "ordType": a.ord_type,
            "side": a.side, "posSide": "net", "tdMode": "cash", "tgtCcy": a.tgt_ccy, "state": a.state, "lever": "",
            "tpTriggerPx": px(a.tp_trigger_px), "tpTriggerPxType": "last" if a.tp_trigger_px else "",
            "tpOrdPx": "-1" if a.tp_trigger_px else "", "slTriggerPx": px(a.sl_trigger_px),
            "slTriggerPxType": "last" if a.sl_trigger_px else "", "slOrdPx": "-1" if a.sl_trigger_px else "",
            "triggerPx": "", "triggerPxType": "", "ordPx": "", "actualSz": fmt(a.sz) if a.ord_id else "",
            "actualPx": px(a.actual_px), "actualSide": a.actual_side, "triggerTime": str(a.u_time) if a.ord_id else "",
            "callbackRatio": px(a.callback_ratio), "callbackSpread": px(a.callback_spread),
            "activePx": px(a.active_px), "moveTriggerPx": px(move.quantize(D("1e-8")) if move is not None else None),
            "reduceOnly": "false", "tag": "", "cTime": str(a.c_time), "uTime": str(a.u_time),
        }


    @staticmethod
    def _order_json(o: OkxOrder) -> dict[str, Any]:
        last = o.last_trade
        return {
            "instType": "SPOT", "instId": o.inst_id, "tgtCcy": "", "ccy": "", "ordId": o.ord_id, "clOrdId": o.cl_ord_id,
            "tag": "", "px": fmt(o.px) if o.px is not None else "", "sz": fmt(o.sz), "pnl": "0", "ordType": o.ord_type,
            "side": o.side, "posSide": "net", "tdMode": "cash", "accFillSz": fmt(o.acc_fill_sz),
            "fillPx": fmt(last.px) if last else "", "tradeId": last.trade_id if last else "",
            "fillSz": fmt(last.sz) if last else "0", "fillTime": str(last.ts) if last else "",
            "avgPx": fmt(o.fill_notional / o.acc_fill_sz) if o.acc_fill_sz else "", "state": o.state,
            "lever": "", "tpTriggerPx": "", "tpOrdPx": "", "slTriggerPx": "", "slOrdPx": "",
            "feeCcy": o.fee_ccy, "fee": fmt(o.fee), "rebateCcy": "", "rebate": "0", "category": "normal",
            "reduceOnly": "false", "cancelSource": o.cancel_source, "algoClOrdId": "", "algoId": "",
            "uTime": str(o.u_time), "cTime": str(o.c_time),
        }

    @staticmethod
    def _trade_json(t: OkxTrade) -> dict[str, Any]:
        return {
            "instType": "SPOT", "instId": t.inst_id, "tradeId": t.trade_id, "ordId": t.ord_id, "clOrdId": t.cl_ord_id,
            "billId": t.bill_id, "subType": "1" if t.side == "buy" else "2", "tag": "", "fillPx": fmt(t.px),
            "fillSz": fmt(t.sz), "side": t.side, "posSide": "net", "execType": "M" if t.maker else "T",
            "feeCcy": t.fee_ccy, "fee": fmt(t.fee), "ts": str(t.ts), "fillTime": str(t.ts),
        }


# -- ccxt wiring ------------------------------------------------------------------------------------


def make_ccxt_okx(server: LoopbackOkx, *, secret: str | None = None, api_key: str | None = None,
                  password: str | None = None, timeout_ms: int = 2000, options: dict[str, Any] | None = None,
                  **config: Any) -> Any:
    """A real ``ccxt.async_support.okx`` talking to ``server`` (call ``close()`` when done):
    ``urls['api'] = {'rest': base}`` through the product's ``point_at``, currencies not fetched."""
    import ccxt.async_support as ccxt_async

    from core.venues.ccxt_venue import point_at

    exchange = ccxt_async.okx(ccxt_config(server, CCXT_OPTIONS, secret=secret, api_key=api_key,
                                          timeout_ms=timeout_ms, options=options,
                                          password=server.passphrase if password is None else password, **config))
    exchange.has["fetchCurrencies"] = False  # the private asset/currencies call is not served here
    point_at(exchange, server.base_url)
    return exchange
