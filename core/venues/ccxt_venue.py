"""A venue over ccxt (``ccxt.async_support``): any exchange ccxt unifies, Binance and OKX first.

The venue boundary: every number ccxt returns becomes ``Decimal(str(x))`` here and nowhere
else. Placement is never retried (a resend could duplicate the order): a network error or
timeout after sending is raised as ``VenueTimeout`` and the engine settles it by looking the
client order id up. Lookups, cancels and reads are idempotent and retried on transient errors
with exponential backoff and jitter; InvalidOrder, InsufficientFunds, AuthenticationError and
BadSymbol are never retried and come back as one clear sentence. ccxt is imported only when a
venue of this kind is created (it costs ~0.5 s).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from core.clock import Clock, SystemClock
from core.errors import OrderNotFound, OrderRejected, VenueTimeout, VenueUnavailable
from core.models import Balance, Liquidity, Market, Order, OrderStatus, OrderType, Side, TimeInForce
from core.numbers import to_decimal
from core.venues.base import Quote, VenueFill, VenueReport, VenueUpdates

T = TypeVar("T")

_STATUS = {
    "open": OrderStatus.OPEN,
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELLED,
    "cancelled": OrderStatus.CANCELLED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}


def _dec(value: object) -> Decimal | None:
    return None if value is None else to_decimal(value)


@dataclass(slots=True)
class CcxtCredentials:
    """Keys come from the environment or an owner-only config file; never logged or shown."""

    api_key: str | None = None
    secret: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:  # never print a secret, not even in a traceback's locals
        return f"CcxtCredentials(api_key={'set' if self.api_key else None}, secret={'set' if self.secret else None})"


class CcxtVenue:
    can_amend = False  # cancel-replace: amend semantics differ too much between exchanges
    lookup_is_definitive = False  # an order may not be visible yet right after a lost answer

    def __init__(
        self,
        exchange_id: str,
        *,
        account: str | None = None,
        credentials: CcxtCredentials | None = None,
        api_url: str | None = None,
        sandbox: bool = False,
        clock: Clock | None = None,
        options: dict[str, Any] | None = None,
        timeout_ms: int = 10_000,
        retry_deadline: float = 5.0,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.name = exchange_id
        self.account = account or exchange_id
        self.clock = clock or SystemClock()
        self._credentials = credentials or CcxtCredentials()
        self._api_url = api_url
        self._sandbox = sandbox
        self._options = options or {}
        self._timeout_ms = timeout_ms
        self._retry_deadline = retry_deadline
        self._config = config or {}
        self.markets: dict[str, Market] = {}
        self.has_cancel_all = False
        self._ex: Any = None
        self._ccxt: Any = None
        self._tracked: dict[str, Order] = {}
        self._finished: set[str] = set()
        self._quotes: dict[str, Quote] = {}

    # -- lifecycle ----------------------------------------------------------------------------

    async def connect(self) -> None:
        import ccxt.async_support as ccxt_async  # lazily: only a real exchange pays for it

        self._ccxt = ccxt_async
        try:
            cls = getattr(ccxt_async, self.name)
        except AttributeError:
            raise OrderRejected(f"unknown exchange {self.name!r}: not a ccxt exchange id") from None
        # The halt proves the book empty by reading every open order, not one symbol at a time.
        options = {"warnOnFetchOpenOrdersWithoutSymbol": False, **self._options}
        config: dict[str, Any] = {"enableRateLimit": True, "timeout": self._timeout_ms, "options": options, **self._config}
        creds = self._credentials
        if creds.api_key:
            config.update(apiKey=creds.api_key, secret=creds.secret or "", password=creds.password or "")
        ex = cls(config)
        if self._sandbox:
            ex.set_sandbox_mode(True)
        if self._api_url:
            point_at(ex, self._api_url)
        self._ex = ex
        self.has_cancel_all = bool(ex.has.get("cancelAllOrders"))
        await self._call(ex.load_markets)
        self.markets = {sym: self._market(m) for sym, m in ex.markets.items() if m.get("spot", True)}

    async def close(self) -> None:
        if self._ex is not None:
            await self._ex.close()

    def restore(self, orders: Sequence[Order], prices: dict[str, Decimal]) -> None:
        for o in orders:
            if o.status.is_live:
                self._tracked[o.client_order_id] = o

    def _market(self, m: dict[str, Any]) -> Market:
        precision = m.get("precision") or {}
        limits = m.get("limits") or {}

        def step(value: object) -> Decimal:
            return precision_step(self._ex, value)

        amount_limits = limits.get("amount") or {}
        cost_limits = limits.get("cost") or {}
        leverage = (limits.get("leverage") or {}).get("max")
        return Market(
            symbol=m["symbol"], base=m["base"], quote=m["quote"],
            tick_size=step(precision.get("price")), lot_size=step(precision.get("amount")),
            min_amount=_dec(amount_limits.get("min")) or Decimal(0),
            max_amount=_dec(amount_limits.get("max")),
            min_notional=_dec(cost_limits.get("min")) or Decimal(0),
            max_leverage=_dec(leverage) or Decimal(1),
        )

    # -- errors and retries ------------------------------------------------------------------------

    def _translate(self, exc: Exception, what: str) -> Exception:
        c = self._ccxt
        text = str(exc)
        if self._credentials.secret:
            text = text.replace(self._credentials.secret, "***")
        if isinstance(exc, c.AuthenticationError):
            return OrderRejected(f"{self.name} refused the API key ({what}): check the key, secret and its permissions")
        if isinstance(exc, c.InsufficientFunds):
            return OrderRejected(f"{self.name}: insufficient funds for {what}")
        if isinstance(exc, c.BadSymbol):
            return OrderRejected(f"{self.name} does not list that symbol ({what})")
        if isinstance(exc, c.OrderNotFound):
            return OrderNotFound(f"{self.name} does not know the order ({what})")
        if isinstance(exc, c.InvalidOrder):
            return OrderRejected(f"{self.name} rejected {what}: {text}")
        if isinstance(exc, c.RequestTimeout):
            return VenueTimeout(f"{self.name} did not answer {what} in time")
        if isinstance(exc, (c.RateLimitExceeded, c.DDoSProtection)):
            return VenueUnavailable(f"{self.name} rate-limited {what}")
        if isinstance(exc, (c.ExchangeNotAvailable, c.NetworkError)):
            return VenueTimeout(f"{self.name} unreachable during {what}: {type(exc).__name__}")
        if isinstance(exc, (c.OperationFailed, c.BadResponse)):
            # e.g. Binance -1006 "execution status unknown": the exchange may have acted
            return VenueTimeout(f"{self.name} gave no clear answer to {what}: {type(exc).__name__}")
        if isinstance(exc, c.BaseError):
            return OrderRejected(f"{self.name} refused {what}: {text}")
        return exc

    async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any, what: str = "the request", retry: bool = True) -> T:
        """Call ccxt; transient errors retried with backoff and jitter when ``retry``."""
        from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_exponential_jitter

        def transient(exc: BaseException) -> bool:
            return isinstance(exc, (self._ccxt.NetworkError, self._ccxt.RateLimitExceeded, self._ccxt.DDoSProtection,
                                    self._ccxt.ExchangeNotAvailable))

        try:
            if not retry:
                return await fn(*args)
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(transient), stop=stop_after_delay(self._retry_deadline),
                wait=wait_exponential_jitter(multiplier=0.05, max=1.0, jitter=0.05), reraise=True,
            ):
                with attempt:
                    return await fn(*args)
        except Exception as exc:  # noqa: BLE001 - translated below; not a ccxt error re-raises as is
            raise self._translate(exc, what) from None
        raise AssertionError("unreachable")

    # -- requests ----------------------------------------------------------------------------------

    def _order_params(self, order: Order) -> tuple[str, Any, dict[str, Any]]:
        params: dict[str, Any] = {"clientOrderId": order.client_order_id}
        kind = {"market": "market", "limit": "limit", "stop": "market", "stop_limit": "limit", "take_profit": "market"}[
            order.type.value]
        if order.type.value == "take_profit" and order.price is not None:
            kind = "limit"
        if order.stop_price is not None:
            key = "takeProfitPrice" if order.type is OrderType.TAKE_PROFIT else "stopLossPrice"
            params[key] = float(order.stop_price)  # ccxt's own interface takes floats
        if order.time_in_force is TimeInForce.PO:
            params["postOnly"] = True
        elif order.time_in_force is not TimeInForce.GTC and kind == "limit":
            params["timeInForce"] = order.time_in_force.value
        if order.reduce_only:
            params["reduceOnly"] = True
        return kind, (float(order.price) if order.price is not None else None), params

    async def submit(self, order: Order) -> VenueReport:
        kind, price, params = self._order_params(order)
        self._tracked[order.client_order_id] = order  # before sending: a lost answer is still polled
        try:
            raw = await self._call(self._ex.create_order, order.symbol, kind, order.side.value, float(order.amount),
                                   price, params, what=f"the {order.symbol} {order.side.value} order", retry=False)
        except OrderRejected:
            self._tracked.pop(order.client_order_id, None)  # refused outright: nothing to follow
            raise
        return await self._report(order, raw)

    async def cancel(self, order: Order) -> VenueReport:
        raw = await self._call(self._ex.cancel_order, order.venue_order_id or "", order.symbol,
                               {"clientOrderId": order.client_order_id}, what=f"the cancel of {order.id}")
        report = await self._report(order, raw)
        if report.status is OrderStatus.OPEN:  # some venues answer a cancel with the order as it was
            report.status = OrderStatus.CANCELLED
        return report

    async def amend(self, order: Order, price: Decimal | None, amount: Decimal | None) -> VenueReport:
        raise OrderRejected(f"{self.name}: orders are modified by cancel-replace")

    async def cancel_all(self, symbol: str | None = None) -> list[VenueReport]:
        try:
            raws = await self._call(self._ex.cancel_all_orders, symbol, what=f"cancel-all {symbol or ''}".strip())
        except OrderNotFound:
            return []  # nothing was open (Binance answers -2011)
        reports = []
        for raw in raws or []:
            # a cancel's own answer carries a new client id; the order's is origClientOrderId
            cid = (raw.get("info") or {}).get("origClientOrderId") or raw.get("clientOrderId")
            order = self._tracked.get(cid) if cid else None
            report = self._from_raw(raw, cid or str(raw.get("id")))
            report.status = OrderStatus.CANCELLED if report.status.is_live else report.status
            if order is not None:
                report.fills = await self._fills(order, report)
            reports.append(report)
        return reports

    async def fetch_order(self, order: Order) -> VenueReport | None:
        try:
            raw = await self._call(self._ex.fetch_order, order.venue_order_id or "", order.symbol,
                                   {"clientOrderId": order.client_order_id}, what=f"the lookup of {order.id}")
        except OrderNotFound:
            return None
        return await self._report(order, raw)

    async def fetch_open_orders(self, symbol: str | None = None) -> list[VenueReport]:
        raws = await self._call(self._ex.fetch_open_orders, symbol, what="open orders")
        return [self._from_raw(r, r.get("clientOrderId") or str(r.get("id"))) for r in raws]

    async def fetch_balance(self) -> Balance:
        raw = await self._call(self._ex.fetch_balance, what="the balance")
        quote = "USDT"
        total = raw.get("total", {}).get(quote)
        free = raw.get("free", {}).get(quote)
        used = raw.get("used", {}).get(quote)
        return Balance(currency=quote, total=_dec(total) or Decimal(0), free=_dec(free) or Decimal(0),
                       used=_dec(used) or Decimal(0))

    async def fetch_positions(self) -> dict[str, Decimal]:
        return {}  # spot: holdings are balances, not positions

    async def poll(self) -> VenueUpdates:
        """One read of the open orders, a lookup only for tracked orders that left it, and the
        last prices of their symbols (requests grow with what changed, not with what rests)."""
        # Orders reported final last time are dropped only now, after the engine applied that
        # report: a poll that fails half-way must not lose a fill it had already read.
        for cid in self._finished:
            self._tracked.pop(cid, None)
        self._finished = set()
        reports = []
        open_now = {r.client_order_id: r for r in await self.fetch_open_orders()} if self._tracked else {}
        for cid, order in list(self._tracked.items()):
            seen = open_now.get(cid)
            if seen is not None:
                if seen.filled > order.filled:  # partly filled while resting: its trades
                    seen.fills = await self._fills(order, seen)
                    reports.append(seen)
                continue
            report = await self.fetch_order(order)
            if report is None:
                continue
            reports.append(report)
            if not report.status.is_live:
                self._finished.add(cid)
        prices: dict[str, Decimal] = {}
        symbols = sorted({o.symbol for o in self._tracked.values()})
        for sym in symbols:
            try:
                quote = await self.fetch_quote(sym)
            except VenueUnavailable:  # stale prices for one tick beat losing the order reports
                continue
            if quote is not None:
                prices[sym] = quote.last
        return VenueUpdates(reports, prices)

    def quote(self, symbol: str) -> Quote | None:
        return self._quotes.get(symbol)

    async def fetch_quote(self, symbol: str) -> Quote | None:
        """The ticker now (the engine asks when it must value an order and has no price yet)."""
        t = await self._call(self._ex.fetch_ticker, symbol, what=f"the {symbol} ticker")
        last = _dec(t.get("last"))
        if last is None:
            return None
        quote = Quote(symbol, _dec(t.get("bid")) or last, _dec(t.get("ask")) or last, last)
        self._quotes[symbol] = quote
        return quote

    # -- answers -----------------------------------------------------------------------------------

    def _from_raw(self, raw: dict[str, Any], client_order_id: str) -> VenueReport:
        status = _STATUS.get(str(raw.get("status")), OrderStatus.OPEN)
        filled = _dec(raw.get("filled")) or Decimal(0)
        amount = _dec(raw.get("amount"))
        if status is OrderStatus.OPEN and filled > 0:
            status = OrderStatus.PARTIALLY_FILLED
        return VenueReport(client_order_id=client_order_id, status=status, venue_order_id=str(raw.get("id")),
                           filled=filled, amount=amount, symbol=raw.get("symbol"), price=_dec(raw.get("price")),
                           side=raw.get("side"), order_type=raw.get("type"))

    async def _report(self, order: Order, raw: dict[str, Any]) -> VenueReport:
        report = self._from_raw(raw, order.client_order_id)
        report.amount = None  # the engine's amount stays the truth unless an amend changed it
        report.fills = await self._fills(order, report, raw)
        return report

    async def _fills(self, order: Order, report: VenueReport, raw: dict[str, Any] | None = None) -> list[VenueFill]:
        """Fills from the exchange's trades (exact amounts and fees, de-duplicated by trade id)."""
        if report.filled <= order.filled:
            return []
        trades = (raw or {}).get("trades") or []
        if not trades and self._ex.has.get("fetchMyTrades"):
            trades = await self._call(self._ex.fetch_my_trades, order.symbol, None, None,
                                      {"orderId": report.venue_order_id}, what=f"the trades of {order.id}")
        fills = []
        for t in trades:
            if report.venue_order_id and str(t.get("order")) not in (report.venue_order_id, "None"):
                continue
            fee = t.get("fee") or {}
            # Exchanges number trades per symbol: the symbol makes the id unique per account. A
            # trade without an id gets one from what identifies it.
            tid = t.get("id")
            if tid is None:
                tid = f"{report.venue_order_id}-{t.get('timestamp')}-{t.get('amount')}-{t.get('price')}"
            fills.append(VenueFill(
                trade_id=f"{order.symbol}#{tid}", amount=to_decimal(t["amount"]), price=to_decimal(t["price"]),
                fee=_dec(fee.get("cost")) or Decimal(0), fee_currency=str(fee.get("currency") or ""),
                liquidity=Liquidity.MAKER if t.get("takerOrMaker") == "maker" else Liquidity.TAKER,
                timestamp=datetime.fromtimestamp(t["timestamp"] / 1000, UTC) if t.get("timestamp") else self.clock.now(),
            ))
        return fills


def precision_step(exchange: Any, value: object) -> Decimal:
    """A ccxt market precision as a step (tick or lot), whatever the exchange's precision mode."""
    import ccxt.async_support as ccxt_async

    if value is None:
        return Decimal("1e-8")
    if exchange.precisionMode == ccxt_async.TICK_SIZE:
        return to_decimal(value)
    return Decimal(1).scaleb(-int(value))  # type: ignore[call-overload]  # DECIMAL_PLACES


def point_at(exchange: Any, base_url: str) -> None:
    """Send every REST call of a ccxt exchange to ``base_url`` (a test server, a proxy)."""
    base = base_url.rstrip("/")
    api = exchange.urls.get("api")
    if isinstance(api, dict):
        exchange.urls["api"] = {k: _rebase(v, base) for k, v in api.items()}
    else:
        exchange.urls["api"] = base


def _rebase(url: Any, base: str) -> Any:
    if isinstance(url, dict):
        return {k: _rebase(v, base) for k, v in url.items()}
    if isinstance(url, str) and "://" in url:
        rest = url.split("://", 1)[1]
        path = rest.split("/", 1)[1] if "/" in rest else ""
        return f"{base}/{path}" if path else base
    return url


_ = Side  # re-exported for symmetry with the sim venue's module
