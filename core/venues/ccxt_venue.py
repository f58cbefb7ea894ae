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

import asyncio
import difflib
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

from core.clock import Clock, SystemClock
from core.config import TrackingSettings
from core.errors import OrderNotFound, OrderRejected, VenueError, VenueTimeout, VenueUnavailable
from core.models import Balance, Market, Order, OrderStatus, OrderType, Side, TimeInForce
from core.numbers import to_decimal
from core.venues.base import NATIVE_PREFIX, NativeExits, NativeForm, NativeTrail, Quote, VenueFill, VenueReport, VenueUpdates
from core.venues.ccxt_parse import fill_from_trade, quote_from_ticker
from core.venues.ccxt_tracker import CcxtTracker
from core.venues.emulated_triggers import Held, TriggerBook, native_trigger_supported, released, would_trigger
from core.venues.settlement import settlement_currency

log = logging.getLogger(__name__)

T = TypeVar("T")

_STATUS = {
    "open": OrderStatus.OPEN,
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELLED,
    "cancelled": OrderStatus.CANCELLED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}
# A held order not found by its first lookup after a restart is looked up once more this many
# seconds later before it may fire: right after a lost answer an order may not be visible yet.
_NOT_FOUND_CONFIRM_SECONDS = 2.0


# Exchanges whose algo-order book (TP/SL, OCO, trailing: separate ids and endpoints, reached by
# ccxt's ``trigger``/``trailing`` params) this venue follows; elsewhere contingents stay emulated.
_ALGO_BOOK = frozenset({"okx"})
# What the core keeps natively there, by the ccxt ``has`` flag that must be set for it.
_NATIVE_FLAGS = (("bracket", "createOrderWithTakeProfitAndStopLoss"), ("trailing", "createTrailingPercentOrder"))
# The algo-order lists read to see every open algo order (OKX: conditional and oco together).
_ALGO_LISTS: tuple[dict[str, Any], ...] = ({"trigger": True, "ordType": "conditional,oco"}, {"trailing": True})


def is_algo(client_order_id: str) -> bool:
    return client_order_id.startswith(NATIVE_PREFIX)


# The order-id parameter of an exchange's my-trades read, where ccxt has no fetch_order_trades.
_ORDER_ID_PARAM = {"okx": "ordId"}
# Trades reads paged by a cursor: the parameter that asks for the rows older than a row, the
# row's field it takes, and the page size (OKX: ``after`` a ``billId``, 100 rows a page).
_TRADE_PAGES = {"okx": ("after", "billId", 100)}
_MAX_TRADE_PAGES = 50  # a bound on one read, not a count an order reaches


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



def exchange_class(name: str) -> Any:
    """ccxt's async class for an exchange id, or a refusal that names the nearest ids (a typo in
    ``--venue`` or a config file is said in one line, before anything is sent)."""
    import ccxt.async_support as ccxt_async  # lazily: only a real exchange pays for it

    if name in ccxt_async.exchanges:
        return getattr(ccxt_async, name)
    near = difflib.get_close_matches(name.lower(), ccxt_async.exchanges, n=3, cutoff=0.75)
    hint = f"did you mean {', '.join(near)}?" if near else "ccxt's ids are lower case, e.g. binance, okx, bybit"
    raise OrderRejected(f"unknown exchange {name!r}: not a ccxt exchange id ({hint})")


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
        tracking: TrackingSettings | None = None,
        settlement_currency: str | None = None,  # the account's cash currency; else chosen at the balance read
    ) -> None:
        self.name = exchange_id
        self._settlement = settlement_currency
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
        self.halted = False  # the engine's HALTED: held orders do not fire (the halt cancels them)
        self.native_contingent: frozenset[str] = frozenset()  # see core.venues.base.native_support
        self._plans: dict[str, NativeForm] = {}  # client order id -> the native form its submit sends
        self._ex: Any = None
        self._ccxt: Any = None
        self._tracked: dict[str, Order] = {}
        # client ids of orders reported final whose fills may not all be booked (a cancel answered
        # without them, trades lagging the status): the tracker keeps looking them up
        self._unsettled: set[str] = set()
        self._quotes: dict[str, Quote] = {}
        self._held = TriggerBook()  # emulated stops and take-profits, not at the exchange yet
        # streams, adaptive polling and market refresh; held triggers need prices too
        self._tracker = CcxtTracker(self, tracking or TrackingSettings(), urgent_symbols=self._held.symbols)

    # -- lifecycle ----------------------------------------------------------------------------

    async def connect(self) -> None:
        import ccxt.async_support as ccxt_async  # lazily: only a real exchange pays for it

        self._ccxt = ccxt_async
        cls = exchange_class(self.name)
        # The halt proves the book empty by reading every open order, not one symbol at a time.
        options = {"warnOnFetchOpenOrdersWithoutSymbol": False, **self._options}
        config: dict[str, Any] = {"enableRateLimit": True, "timeout": self._timeout_ms, "options": options, **self._config}
        creds = self._credentials
        if creds.api_key:
            config.update(apiKey=creds.api_key, secret=creds.secret or "", password=creds.password or "")
        ex = cls(config)
        if options.get("fetchCurrencies") is False:
            ex.has["fetchCurrencies"] = False  # some exchanges (OKX) consult only ``has`` for it
        if self._sandbox:
            ex.set_sandbox_mode(True)
        if self._api_url:
            point_at(ex, self._api_url)
        self._ex = ex
        self.has_cancel_all = bool(ex.has.get("cancelAllOrders"))
        if self.name in _ALGO_BOOK:
            self.native_contingent = frozenset(kind for kind, flag in _NATIVE_FLAGS if ex.has.get(flag))
        await self._call(ex.load_markets)
        self.markets = {sym: self._market(m) for sym, m in ex.markets.items() if m.get("spot", True)}
        await self._tracker.start(config)

    async def reload_markets(self) -> None:
        """Reload precision, limits and fees: exchanges change tick sizes and list symbols. The
        dict is updated in place, so whoever holds ``markets`` sees the new values."""
        await self._call(self._ex.load_markets, True, what="the markets")
        fresh = {sym: self._market(m) for sym, m in self._ex.markets.items() if m.get("spot", True)}
        self.markets.clear()
        self.markets.update(fresh)

    async def close(self) -> None:
        # together: each ccxt instance waits out a grace period when it closes
        await asyncio.gather(self._tracker.close(), *([self._ex.close()] if self._ex is not None else []))

    def restore(self, orders: Sequence[Order], prices: dict[str, Decimal]) -> None:
        self._tracker.watch_prices(prices)  # the symbols of positions keep being marked
        for o in orders:
            if self._held_before(o):
                # not sent when the journal last heard of it, but maybe just before a crash:
                # looked up by client order id before it may fire (or answer a lookup). One
                # journaled cancelling had its cancel here: its lookup completes it (fetch_order)
                o.emulated = True
                self._held.hold(o, verified=False, cancel_journaled=o.status is OrderStatus.CANCELLING)
                continue
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
            maker_fee=_dec(m.get("maker")), taker_fee=_dec(m.get("taker")),
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
            wait = getattr(exc, "retry_after", None)
            said = f"; it asks to retry after {wait:g} s" if wait else ""
            return VenueUnavailable(f"{self.name} rate-limited {what}{said}", retry_after=wait)
        if isinstance(exc, (c.ExchangeNotAvailable, c.NetworkError)):
            return VenueTimeout(f"{self.name} unreachable during {what}: {type(exc).__name__}")
        if isinstance(exc, (c.OperationFailed, c.BadResponse)):
            # e.g. Binance -1006 "execution status unknown": the exchange may have acted
            return VenueTimeout(f"{self.name} gave no clear answer to {what}: {type(exc).__name__}")
        if isinstance(exc, c.BaseError):
            return OrderRejected(f"{self.name} refused {what}: {text}")
        return exc

    def _retry_after(self) -> float | None:
        """The Retry-After (seconds) of the response just received, if it has one. Read at once
        after the failed call: ccxt keeps only the last response's headers."""
        headers = getattr(self._ex, "last_response_headers", None) or {}
        raw = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
        try:
            wait = float(raw) if raw is not None else None
        except ValueError:  # the HTTP-date form: no exchange we know sends it
            return None
        return wait if wait is not None and 0 < wait < 86_400 else None

    async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any, what: str = "the request", retry: bool = True) -> T:
        """Call ccxt; transient errors retried with backoff and jitter when ``retry``. A rate
        limit's Retry-After is obeyed: sending again sooner gets an IP banned (Binance's 418), so
        when it lies beyond the retry deadline the call gives up at once and says when."""
        from tenacity import AsyncRetrying, retry_if_exception, wait_exponential_jitter

        c = self._ccxt
        deadline = self._retry_deadline
        backoff = wait_exponential_jitter(multiplier=0.05, max=1.0, jitter=0.05)

        def transient(exc: BaseException) -> bool:
            return isinstance(exc, (c.NetworkError, c.RateLimitExceeded, c.DDoSProtection, c.ExchangeNotAvailable))

        def asked(state: Any) -> float:
            return getattr(state.outcome.exception(), "retry_after", None) or 0.0

        def wait(state: Any) -> float:
            return max(backoff(state), asked(state))

        def stop(state: Any) -> bool:
            return state.seconds_since_start + asked(state) >= deadline

        async def once() -> T:
            try:
                return await fn(*args)
            except (c.RateLimitExceeded, c.DDoSProtection) as exc:
                exc.retry_after = self._retry_after()  # type: ignore[attr-defined]
                raise

        try:
            if not retry:
                return await once()
            async for attempt in AsyncRetrying(retry=retry_if_exception(transient), stop=stop, wait=wait, reraise=True):
                with attempt:
                    return await once()
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

    def plan_native(self, client_order_id: str, form: NativeForm) -> None:
        """Send the next submit of ``client_order_id`` in its native form (see ``native_support``)."""
        self._plans[client_order_id] = form

    def follow(self, order: Order) -> None:
        """Track an order the exchange created itself (exits attached to a filled entry)."""
        self._tracked[order.client_order_id] = order

    async def submit(self, order: Order) -> VenueReport:
        plan = self._plans.pop(order.client_order_id, None)
        if isinstance(plan, NativeTrail):
            return await self._send_trail(order, plan)
        if isinstance(plan, NativeExits):
            return await self._send(order, order, plan)
        if self._emulates(order):
            return await self._hold(order)
        return await self._send(order, order)

    async def _send(self, order: Order, sent: Order, exits: NativeExits | None = None) -> VenueReport:
        """Place ``sent`` for ``order``: the order itself, or what an emulated trigger releases;
        with ``exits`` attached (TP/SL the exchange places once the order has filled)."""
        kind, price, params = self._order_params(sent)
        self._tracked[order.client_order_id] = order  # before sending: a lost answer is still polled
        create = self._ex.create_order if exits is None else partial(self._create_with_exits, exits)
        try:
            raw = await self._call(create, order.symbol, kind, order.side.value, float(order.amount),
                                   price, params, what=f"the {order.symbol} {order.side.value} order", retry=False)
        except OrderRejected:
            self._tracked.pop(order.client_order_id, None)  # refused outright: nothing to follow
            raise
        if raw.get("status") is None and raw.get("id"):
            # the exchange answered with ids only (OKX): one lookup says whether it filled
            with suppress(VenueError):
                raw = await self._call(self._ex.fetch_order, str(raw["id"]), order.symbol, {},
                                       what=f"the lookup of {order.id}")
        return await self._created(order, raw)

    async def _created(self, order: Order, raw: dict[str, Any]) -> VenueReport:
        """The report of an order the exchange has taken. What fails after that (a read of its
        trades) is no refusal: the order stands, and its fills are not known yet. So the submit
        is ambiguous, settled by a lookup of the client id, as after a lost answer."""
        try:
            return await self._report(order, raw)
        except VenueError as exc:
            raise VenueTimeout(f"{self.name} took {order.id}, but reading its fills failed ({exc})") from None

    # -- the algo-order book: native exits and trailing stops --------------------------------------

    async def _create_with_exits(self, exits: NativeExits, symbol: str, kind: str, side: str, amount: float,
                                 price: float | None, params: dict[str, Any]) -> dict[str, Any]:
        """ccxt's unified ``stopLoss``/``takeProfit`` (market exits) build the request; the one
        field it has no parameter for, the exits' own client id (OKX ``attachAlgoClOrdId``), is
        added so the link is known before anything is sent."""
        ex = self._ex
        if exits.stop_loss is not None:
            params["stopLoss"] = {"triggerPrice": float(exits.stop_loss)}
        if exits.take_profit is not None:
            params["takeProfit"] = {"triggerPrice": float(exits.take_profit)}
        request = ex.create_order_request(symbol, kind, side, amount, price, params)
        for attached in request.get("attachAlgoOrds") or []:
            attached["attachAlgoClOrdId"] = exits.client_order_id
        response = await ex.private_post_trade_order(request)
        return ex.parse_order((response.get("data") or [{}])[0], ex.market(symbol))

    async def _send_trail(self, order: Order, trail: NativeTrail) -> VenueReport:
        """A trailing stop in the exchange's algo book (OKX ``move_order_stop``): a market order
        of the order's amount when the price comes back by the trail from its best."""
        params: dict[str, Any] = {"algoClOrdId": order.client_order_id}
        if trail.percent is not None:
            params["trailingPercent"] = str(trail.percent)  # ccxt sends callbackRatio = percent / 100
        else:
            params["trailingAmount"] = str(trail.amount)  # callbackSpread
        if trail.activation is not None:
            params["activePx"] = str(trail.activation)
        self._tracked[order.client_order_id] = order
        try:
            raw = await self._call(self._ex.create_order, order.symbol, "market", order.side.value,
                                   float(order.amount), None, params,
                                   what=f"the {order.symbol} trailing stop", retry=False)
        except OrderRejected:
            self._tracked.pop(order.client_order_id, None)
            raise
        return VenueReport(client_order_id=order.client_order_id, status=OrderStatus.OPEN,
                           venue_order_id=str(raw.get("id")), symbol=order.symbol)

    def _algo_row(self, raw: dict[str, Any]) -> VenueReport:
        info = raw.get("info") or {}
        return self._from_raw(raw, info.get("algoClOrdId") or f"{NATIVE_PREFIX}{raw.get('id')}")

    async def _fetch_algo(self, order: Order) -> VenueReport | None:
        """An algo order's state; once it fired, the market order it placed carries the fills."""
        try:
            raw = await self._call(self._ex.fetch_order, "", order.symbol,
                                   {"trigger": True, "clientOrderId": order.client_order_id},
                                   what=f"the lookup of {order.id}")
        except OrderNotFound:
            return None
        info = raw.get("info") or {}
        algo_id = str(info.get("algoId") or raw.get("id"))
        state = info.get("state")
        report = VenueReport(client_order_id=order.client_order_id, status=OrderStatus.OPEN, venue_order_id=algo_id,
                             symbol=order.symbol, side=raw.get("side"), order_type=info.get("ordType"))
        if state == "canceled":
            report.status = OrderStatus.CANCELLED
        elif state == "order_failed":
            report.status = OrderStatus.REJECTED
            report.error = f"{self.name}: the algo order fired but its order failed"
        child_id = info.get("ordId") or next(iter(info.get("ordIdList") or []), None)
        if state not in ("effective", "partially_effective") or not child_id:
            if not report.status.is_live:
                self._unsettled.discard(order.client_order_id)  # final at the exchange, nothing filled
            return report
        child = await self._call(self._ex.fetch_order, str(child_id), order.symbol, {},
                                 what=f"the order {order.id} placed when it fired")
        fired = self._from_raw(child, order.client_order_id)
        fired.amount = None
        fired.fills = await self._fills(order, fired, child)  # the child's trades, by the child's id
        fired.venue_order_id = algo_id  # the engine's order is the algo order
        return fired

    async def _cancel_algo(self, order: Order) -> VenueReport:
        params: dict[str, Any] = {"trigger": True}
        if not order.venue_order_id:
            params["clientOrderId"] = order.client_order_id
        await self._call(self._ex.cancel_order, order.venue_order_id or "", order.symbol, params,
                         what=f"the cancel of {order.id}")
        # OKX answers cancel-algos with ids only, and the order may have fired and filled
        # meanwhile: its lookup says what became of it (the fills of its market order booked)
        report: VenueReport | None = None
        with suppress(VenueError):
            report = await self._fetch_algo(order)
        if report is None:
            report = VenueReport(client_order_id=order.client_order_id, status=OrderStatus.OPEN,
                                 venue_order_id=order.venue_order_id, symbol=order.symbol)
        if report.status is OrderStatus.REJECTED:
            report.status = OrderStatus.CANCELLED  # fired, its order failed: gone all the same, error kept
        elif report.status.is_live:
            report.status = OrderStatus.CANCELLED
            # final by our word, not the exchange's: followed until the exchange itself says so
            self._unsettled.add(order.client_order_id)
        return report

    # -- emulated triggers (see core.venues.emulated_triggers) -------------------------------------

    def _emulates(self, order: Order) -> bool:
        return order.type.needs_trigger and not native_trigger_supported(self._ex.markets.get(order.symbol), order)

    def _held_before(self, order: Order) -> bool:
        """Whether a journaled live order is one this venue holds (or would have held, had the
        submit's answer been journaled): emulated and never seen at the exchange."""
        if order.venue_order_id is not None or not order.status.is_live or is_algo(order.client_order_id):
            return False
        if order.emulated:
            return order.status is not OrderStatus.TRIGGERED
        return order.status in (OrderStatus.SUBMITTING, OrderStatus.UNRESOLVED) and self._emulates(order)

    async def _hold(self, order: Order) -> VenueReport:
        """Keep a trigger order the exchange cannot take: nothing is sent until the price reaches it."""
        assert order.stop_price is not None
        try:
            quote = await self.fetch_quote(order.symbol)
        except VenueUnavailable:
            quote = self._quotes.get(order.symbol)  # a stale price beats refusing: the poll checks again
        if quote is not None and would_trigger(order.type, order.side, order.stop_price, quote.last):
            raise OrderRejected(f"{self.name}: the {order.type.value} trigger {order.stop_price} would fire at once "
                                f"(last price {quote.last})")
        order.emulated = True  # the engine's order: journaled with its acknowledgement, shown in the UI
        self._held.hold(order)
        return VenueReport(client_order_id=order.client_order_id, status=OrderStatus.OPEN, symbol=order.symbol)

    def _held_answer(self, order: Order, status: OrderStatus) -> VenueReport:
        return VenueReport(client_order_id=order.client_order_id, status=status, symbol=order.symbol,
                           side=order.side.value, price=order.price)

    async def _lookup_held(self, held: Held) -> VenueReport | None:
        """An unverified held order (journaled before a restart) may have been sent just before
        the crash: ask the exchange by client order id. Found, it is tracked from now on."""
        order = held.order
        try:
            raw = await self._call(self._ex.fetch_order, "", order.symbol, {"clientOrderId": order.client_order_id},
                                   what=f"the lookup of {order.id}")
        except OrderNotFound:
            # Not definitive (``lookup_is_definitive``): an order sent just before the crash may
            # not be visible yet. Proof it was never sent is a second miss a while after the first.
            now = self.clock.monotonic()
            if held.not_found_at is None:
                held.not_found_at = now
            elif now - held.not_found_at >= _NOT_FOUND_CONFIRM_SECONDS:
                held.verified = True
            return None
        self._held.pop(order.client_order_id)
        self._tracked[order.client_order_id] = order
        report = await self._report(order, raw)
        if report.status is OrderStatus.OPEN:
            report.status = OrderStatus.TRIGGERED
        return report

    async def _release_due(self, prices: dict[str, Decimal]) -> list[VenueReport]:
        """Send the held orders whose trigger the polled prices reached, under their own client
        order ids (journaled when they were placed), as market or limit orders."""
        reports: list[VenueReport] = []
        for held in self._held.of_symbol(None):
            if held.cancel_journaled:  # its cancel, journaled before a restart, is completed first
                try:
                    done = await self._complete_journaled_cancel(held)
                except VenueError:
                    continue  # the request failed: tried again at the next poll; it never fires meanwhile
                except Exception:  # noqa: BLE001 - e.g. an answer ccxt could not parse: this poll's other work goes on
                    log.exception("%s: completing the journaled cancel of %s failed; tried again at the next poll",
                                  self.name, held.order.id)
                    continue
                if done is not None:
                    reports.append(done)
        if self.halted:
            return reports  # whatever a halt could not cancel stays held, never sent
        for held in self._held.due(prices):
            order = held.order
            if order.status is OrderStatus.CANCELLING or held.cancel_journaled:
                continue  # its cancel is in flight (or journaled and not yet proven): it must not fire now
            if not held.verified:
                try:
                    found = await self._lookup_held(held)
                except VenueError:
                    continue  # unknown whether it was sent: not fired, looked up again at the next poll
                if found is not None:
                    reports.append(found)
                    continue
                if not held.verified:
                    continue  # not found once: a second lookup, after a delay, proves it was never sent
            # Each await above (this lookup, the send of the one before) lets a cancel in: fire
            # only what is still held and live, taken out of the book before anything is sent.
            gone = self._held.get(order.client_order_id) is not held
            if gone or not order.status.is_live or order.status is OrderStatus.CANCELLING:
                continue
            self._held.pop(order.client_order_id)
            fired = self._held_answer(order, OrderStatus.TRIGGERED)
            try:
                report = await self._send(order, released(order))
            except OrderRejected as exc:
                reports += [fired, VenueReport(client_order_id=order.client_order_id, status=OrderStatus.REJECTED,
                                               error=f"triggered at {prices[order.symbol]}, then refused: {exc}")]
                continue
            except VenueError:
                reports.append(fired)  # it may have arrived: tracked, settled by client order id, never resent
                continue
            if report.status is OrderStatus.OPEN:
                report.status = OrderStatus.TRIGGERED  # working at the exchange now
                reports.append(report)
            else:
                reports += [fired, report]
        return reports

    async def cancel(self, order: Order) -> VenueReport:
        held = self._held.get(order.client_order_id)
        if held is not None:
            cancelled = await self._cancel_held(held)
            if cancelled is not None:
                return cancelled
        if is_algo(order.client_order_id):
            return await self._cancel_algo(order)
        raw = await self._call(self._ex.cancel_order, order.venue_order_id or "", order.symbol,
                               {"clientOrderId": order.client_order_id}, what=f"the cancel of {order.id}")
        return await self._cancel_answer(order, raw)

    def cancel_pending(self, order: Order) -> bool:
        held = self._held.get(order.client_order_id)
        return held is not None and held.cancel_journaled  # completed by _release_due at a poll

    async def _complete_journaled_cancel(self, held: Held) -> VenueReport | None:
        """A held order restored cancelling: its cancel was sent here just before a crash and its
        answer lost. Nothing of it is at the exchange unless it fired then, so the cancel is
        completed here with the proof a cancel of a restored held order takes (``_cancel_held``).
        Until that proof is in (a request failed: VenueError), it stays flagged and never fires,
        even after the engine reverts it to open: the journal holds the trader's cancel."""
        cancelled = await self._cancel_held(held)
        held.cancel_journaled = False
        if cancelled is not None and held.order.client_order_id not in self._tracked:
            cancelled.error = "its cancel, journaled before a restart, completed where it was held"
        return cancelled

    async def _cancel_held(self, held: Held) -> VenueReport | None:
        """Cancel a held order; None when a lookup found it at the exchange (tracked now, to be
        cancelled there like any order). A verified one was never sent: the cancel is local. An
        unverified one (restored after a restart) may have been sent just before the crash and
        not be visible to lookups yet: a cancel by its client order id goes to the exchange too,
        and it is cancelled here only when the lookup and that cancel both say "not found"."""
        order = held.order
        cid = order.client_order_id
        if not held.verified:
            if await self._lookup_held(held) is not None:
                return None
            try:
                raw = await self._call(self._ex.cancel_order, "", order.symbol, {"clientOrderId": cid},
                                       what=f"the cancel of {order.id}")
            except OrderNotFound:
                pass  # both agree: it never reached the exchange
            else:  # it had: cancelled there, with whatever filled before
                self._held.pop(cid)
                self._tracked[cid] = order
                return await self._cancel_answer(order, raw)
        if self._held.pop(cid) is None:
            return None  # fired while the lookup or the cancel was in flight: sent, cancelled there
        return self._held_answer(order, OrderStatus.CANCELLED)

    async def _cancel_answer(self, order: Order, raw: dict[str, Any]) -> VenueReport:
        """The report of an exchange's answer to a cancel of ``order``."""
        if raw.get("status") is None or raw.get("filled") is None:
            # ids only (OKX): the answer says nothing of what filled before the cancel; the order does
            with suppress(VenueError):
                raw = await self._call(self._ex.fetch_order, str(raw.get("id") or order.venue_order_id or ""),
                                       order.symbol, {"clientOrderId": order.client_order_id},
                                       what=f"the lookup of {order.id}")
        report = await self._report(order, raw)
        if report.status is OrderStatus.OPEN:  # some venues answer a cancel with the order as it was
            report.status = OrderStatus.CANCELLED
            # final by our word, not the exchange's: followed until the exchange itself says so
            self._unsettled.add(order.client_order_id)
        return report

    async def amend(self, order: Order, price: Decimal | None, amount: Decimal | None) -> VenueReport:
        raise OrderRejected(f"{self.name}: orders are modified by cancel-replace")

    async def cancel_all(self, symbol: str | None = None) -> list[VenueReport]:
        reports = []
        taken: list[Held] = []
        try:
            for held in self._held.of_symbol(symbol):  # held orders: cancelled here (and at the exchange if sent)
                cancelled = await self._cancel_held(held)
                if cancelled is not None:
                    reports.append(cancelled)
                    if held.order.client_order_id not in self._tracked:  # cancelled here, not at the exchange
                        taken.append(held)
            raws = await self._call(self._ex.cancel_all_orders, symbol, what=f"cancel-all {symbol or ''}".strip())
        except OrderNotFound:
            return reports  # nothing was open (Binance answers -2011)
        except VenueError:
            # the engine calls every order of a failed cancel-all live again: so are the held ones
            for held in taken:
                self._held.put_back(held)
            raise
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
        held = self._held.get(order.client_order_id)
        if held is not None and held.cancel_journaled:
            cancelled = await self._complete_journaled_cancel(held)
            if cancelled is not None:
                return cancelled
            held = None  # found at the exchange: followed there from now on
        if held is not None:  # emulated, not triggered: the answer is ours
            found = None if held.verified else await self._lookup_held(held)
            return found or self._held_answer(order, OrderStatus.OPEN)
        if is_algo(order.client_order_id):
            return await self._fetch_algo(order)
        try:
            raw = await self._call(self._ex.fetch_order, order.venue_order_id or "", order.symbol,
                                   {"clientOrderId": order.client_order_id}, what=f"the lookup of {order.id}")
        except OrderNotFound:
            return None
        return await self._report(order, raw)

    async def fetch_forgotten(self, order: Order) -> VenueReport | None:
        """The end of an order the exchange acked and no longer knows at all (OKX drops cancelled
        unfilled orders from its lookups after about two hours): not working there. Its trades,
        read by its order id, outlive it: filled as far as they show, cancelled for the rest.
        None where they cannot be read so: an algo order (its fills are those of the order it
        placed), an exchange with no trades read."""
        oid = order.venue_order_id
        if not oid or is_algo(order.client_order_id) or not self._reads_trades(oid):
            return None
        trades = await self._order_trades(order, oid)
        await self._price_fees(order.symbol, trades)
        fills = [self._fill(order.symbol, t, oid) for t in trades if str(t.get("order")) in (oid, "None")]
        filled = sum((f.amount for f in fills), Decimal(0))
        self._unsettled.discard(order.client_order_id)  # nothing more to read of it
        return VenueReport(client_order_id=order.client_order_id,
                           status=OrderStatus.FILLED if filled >= order.amount else OrderStatus.CANCELLED,
                           venue_order_id=oid, filled=filled, fills=fills, symbol=order.symbol,
                           error=f"{self.name} no longer knows the order")

    async def fetch_open_orders(self, symbol: str | None = None) -> list[VenueReport]:
        """Open orders; where the venue keeps orders in the algo book, its open algo orders too
        (always for the whole book, which the halt reads to prove it empty)."""
        raws = await self._call(self._ex.fetch_open_orders, symbol, what="open orders")
        reports = [self._from_raw(r, r.get("clientOrderId") or str(r.get("id"))) for r in raws]
        if self.native_contingent and (symbol is None or any(
                is_algo(cid) and o.symbol == symbol for cid, o in self._tracked.items())):
            for params in _ALGO_LISTS:
                algos = await self._call(self._ex.fetch_open_orders, symbol, None, None, dict(params),
                                         what="open algo orders")
                reports += [self._algo_row(r) for r in algos]
        return reports

    async def fetch_balance(self) -> Balance:
        """The cash in the account's settlement currency: the one configured, else the quote the
        account holds and trades in (``core.venues.settlement``), USDC or TRY as well as USDT."""
        raw = await self._call(self._ex.fetch_balance, what="the balance")
        held = {c: d for c, v in (raw.get("total") or {}).items() if (d := _dec(v)) is not None}
        quote = settlement_currency(self.markets.values(), held, self._settlement, venue=self.name)
        self._settlement = quote  # one account, one cash currency: later reads stay on it
        total = raw.get("total", {}).get(quote)
        free = raw.get("free", {}).get(quote)
        used = raw.get("used", {}).get(quote)
        return Balance(currency=quote, total=_dec(total) or Decimal(0), free=_dec(free) or Decimal(0),
                       used=_dec(used) or Decimal(0))

    async def fetch_positions(self) -> dict[str, Decimal]:
        return {}  # spot: holdings are balances, not positions

    async def poll(self) -> VenueUpdates:
        """What changed since the last poll (``CcxtTracker``: websocket streams where the exchange
        has them, adaptive polling otherwise), then the emulated triggers these prices reached."""
        updates = await self._tracker.poll()
        try:
            updates.reports += await self._release_due(updates.prices)
        except BaseException:
            self._tracker.requeue(updates.reports)  # the fills these carry were read: not lost
            raise
        return updates

    def quote(self, symbol: str) -> Quote | None:
        return self._quotes.get(symbol)

    async def fetch_quote(self, symbol: str) -> Quote | None:
        """The ticker now (the engine asks when it must value an order and has no price yet)."""
        t = await self._call(self._ex.fetch_ticker, symbol, what=f"the {symbol} ticker")
        quote = quote_from_ticker(symbol, t)
        if quote is not None:
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
        """Fills from the exchange's trades (exact amounts and fees, de-duplicated by trade id).
        A report never claims more filled than its fills cover (``_cover``)."""
        if report.filled <= order.filled:
            if not report.status.is_live:
                self._unsettled.discard(order.client_order_id)  # final at the exchange, every fill booked
            return []
        trades = (raw or {}).get("trades") or []
        read = not trades  # trades inside an answer may be only the latest; a trades read is all of them
        if read:
            trades = await self._order_trades(order, report.venue_order_id)
        await self._price_fees(order.symbol, trades)
        fills = [self._fill(order.symbol, t, report.venue_order_id) for t in trades
                 if not report.venue_order_id or str(t.get("order")) in (report.venue_order_id, "None")]
        if read and self._reads_trades(report.venue_order_id):
            self._cover(order, report, fills)
        elif not report.status.is_live:
            self._unsettled.discard(order.client_order_id)
        return fills

    def _reads_trades(self, venue_order_id: str | None) -> bool:
        has = self._ex.has
        return bool(venue_order_id and has.get("fetchOrderTrades") or has.get("fetchMyTrades"))

    def _cover(self, order: Order, report: VenueReport, fills: Sequence[VenueFill]) -> None:
        """Trades can lag the order's status (and come in pages): short of its fills, a report
        says only what they cover, so the tracker's next look reads the rest. A filled order
        stays partly filled until then; a cancelled or expired one stays followed."""
        covered = max(order.filled, sum((f.amount for f in fills), Decimal(0)))
        if covered >= report.filled:
            if not report.status.is_live:
                self._unsettled.discard(order.client_order_id)
            return
        report.filled = covered
        if report.status is OrderStatus.FILLED:
            waiting = OrderStatus.TRIGGERED if order.status is OrderStatus.TRIGGERED else OrderStatus.OPEN
            report.status = OrderStatus.PARTIALLY_FILLED if covered > 0 else waiting
        elif not report.status.is_live:
            self._unsettled.add(order.client_order_id)

    async def _order_trades(self, order: Order, venue_order_id: str | None) -> list[dict[str, Any]]:
        """The trades of one order. ccxt's ``fetch_order_trades`` where the exchange has it (it
        sends OKX's ``ordId``, Binance's ``orderId``); else the account's trades of the symbol
        narrowed by the exchange's own order-id parameter. An unfiltered read would return only
        the latest page (OKX: 100) and could miss this order's trades."""
        ex = self._ex
        what = f"the trades of {order.id}"
        if venue_order_id and ex.has.get("fetchOrderTrades"):
            return await self._paged(partial(ex.fetch_order_trades, venue_order_id, order.symbol, None), what)
        if not ex.has.get("fetchMyTrades"):
            return []
        params = {_ORDER_ID_PARAM.get(self.name, "orderId"): venue_order_id} if venue_order_id else {}
        return await self._paged(partial(ex.fetch_my_trades, order.symbol, None), what, params)

    async def _paged(self, read: Callable[..., Awaitable[list[dict[str, Any]]]], what: str,
                     params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every page of a trades read ``read(limit, params)``, newest first: where the exchange
        pages by a cursor (OKX: 100 a page, ``after`` the oldest ``billId``), page by page."""
        paging = _TRADE_PAGES.get(self.name)
        if paging is None:
            return await self._call(read, None, dict(params or {}), what=what)
        cursor_param, cursor_field, size = paging
        out: list[dict[str, Any]] = []
        query = dict(params or {})
        for _ in range(_MAX_TRADE_PAGES):
            page = await self._call(read, size, dict(query), what=what)
            out += page
            cursor = (page[-1].get("info") or {}).get(cursor_field) if len(page) >= size else None
            if not cursor:
                break
            query[cursor_param] = cursor
        return out

    def _fill(self, symbol: str, trade: dict[str, Any], venue_order_id: str | None) -> VenueFill:
        """A ccxt trade as a fill, its fee valued in the market's quote (``fill_from_trade``)."""
        return fill_from_trade(symbol, trade, venue_order_id, self.clock, self.markets.get(symbol), self._fee_rate)

    def _fee_rate(self, currency: str, quote: str) -> Decimal | None:
        known = self._quotes.get(f"{currency}/{quote}")
        return known.last if known is not None else None

    async def _price_fees(self, symbol: str, trades: Sequence[dict[str, Any]]) -> None:
        """A fee paid in a third currency (Binance's BNB) is valued at that currency's price:
        read it now when it is not known, and keep it marked so later fills find it fresh."""
        market = self.markets.get(symbol)
        if market is None:
            return
        for t in trades:
            for f in t.get("fees") or [t.get("fee") or {}]:
                currency = (f or {}).get("currency")
                pair = f"{currency}/{market.quote}"
                if currency in (None, market.base, market.quote) or pair not in self.markets:
                    continue
                self._tracker.watch_prices([pair])
                if pair not in self._quotes:
                    with suppress(VenueError):  # unpriced: booked as 0, and the engine says so
                        await self.fetch_quote(pair)


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
