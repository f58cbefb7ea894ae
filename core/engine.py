"""The engine: the facade every client uses (the console, scripts, tests).

Order path: risk check -> journal the intent (durable) -> venue -> journal the answer ->
publish. Every venue answer, whether it comes back from a request or from the background poll,
goes through ``_absorb``, the one place where fills are de-duplicated, the ledger is updated and
the order state table is applied. Every fill and mark update then runs the circuit breakers.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
from contextlib import suppress
import os
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from core.algos import AlgoManager
from core.breakers import BreakerMonitor
from core.clock import Clock, SystemClock
from core.config import Settings, TrackingSettings
from core.contingent import Contingent, ContingentManager
from core.errors import EngineError, OrderNotFound, OrderRejected, VenueError
from core.events import (
    AccountChanged,
    EngineEvent,
    FillReceived,
    Notice,
    OrderUpdated,
    PositionChanged,
    PricesUpdated,
    TradingStateChanged,
)
from core.halt import AccountHaltReport, HaltReport, retry_until, within
from core.journal import Journal
from core.ledger import Ledger
from core.lookup_backoff import LookupBackoff
from core.models import (
    ZERO,
    AccountStatus,
    Fill,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    Side,
    TradingState,
)
from core.numbers import clean, floor_to_step
from core.order_states import InvalidOrderTransition, check_transition, settle_reported, status_after_fill
from core.risk import RiskContext, RiskEngine
from core.signals import Direction, Signal, SignalVerdict, Sizing, screen_signal
from core.streams import EventStream
from core.venues.base import Venue, VenueReport, VenueUpdates
from core.venues.sim import SimDials, SimVenue
from core.venues.sim_market import DEFAULT_SPECS, SimMarket, SymbolSpec

S = OrderStatus
_AVG_PLACES = Decimal("1e-10")
_PENDING = (S.NEW, S.SUBMITTING, S.UNRESOLVED)
_HISTORY = 600  # recent prices kept per symbol (signal volatility and trend)
# An acked order its venue no longer knows is taken as ended only when acked this long ago:
# exchanges forget ended orders after hours (OKX: ~2 h), while a lookup of a young order can miss
# it for a moment (eventual consistency), and booking a working order ended would orphan it.
FORGOTTEN_AFTER = timedelta(minutes=10)
_PEAK_JOURNAL_SECONDS = 5.0  # a rising equity peak is journaled at most this often between fills

# The journal kind recorded when a venue answer leaves an order in this status.
_KIND_FOR_STATUS = {
    S.OPEN: "order_acked",
    S.TRIGGERED: "order_triggered",
    S.PARTIALLY_FILLED: "order_partially_filled",
    S.FILLED: "order_filled",
    S.CANCELLED: "order_cancelled",
    S.EXPIRED: "order_expired",
    S.REJECTED: "order_rejected",
    S.FAILED: "order_failed",
    S.UNRESOLVED: "order_unresolved",
    S.CANCELLING: "cancel_requested",
}


def _venue_for(name: str, acct: Any, clock: Clock, tracking: TrackingSettings | None = None) -> Venue:
    """Build one configured account's venue; keys are read from the named environment variables."""
    if acct.exchange == "sim":
        if acct.mode == "live":
            raise EngineError(f"account {name}: the simulated market cannot trade live")
        return SimVenue(SimMarket(acct.seed), clock=clock, account=name, balance=Decimal(100_000), seed=acct.seed)
    if acct.mode == "paper":
        from core.venues.live_prices import LivePriceMarket

        return SimVenue(LivePriceMarket(acct.exchange, api_url=acct.api_url), clock=clock, account=name,
                        balance=Decimal(100_000))
    from core.venues.ccxt_venue import CcxtCredentials, CcxtVenue

    missing = [v for v in (acct.api_key_env, acct.secret_env) if not v or not os.environ.get(v)]
    if missing or not acct.api_key_env or not acct.secret_env:
        raise EngineError(f"account {name}: live trading on {acct.exchange} needs api_key_env and secret_env naming "
                          f"environment variables that are set ({', '.join(str(m) for m in missing) or 'not named'})")
    creds = CcxtCredentials(os.environ[acct.api_key_env], os.environ[acct.secret_env],
                            os.environ.get(acct.password_env) if acct.password_env else None)
    return CcxtVenue(acct.exchange, account=name, credentials=creds, api_url=acct.api_url, sandbox=acct.sandbox,
                     clock=clock, tracking=tracking)


def _update(order: Order, changes: dict[str, Any]) -> None:
    """Set already-checked fields of an engine-owned order. Goes around pydantic's per-field
    ``__setattr__`` (about 1.5 us each, several per venue report: it showed in the halt's and the
    order path's profiles); the values come from the state table and the venue boundary."""
    order.__dict__.update(changes)


class Algorithm(Protocol):
    """Anything the halt must stop first (execution algorithms register themselves)."""

    name: str

    async def stop(self, reason: str) -> None: ...


@dataclass(slots=True)
class _Applied:
    order: Order
    fills: list[Fill]
    kind: str


@dataclass(slots=True)
class _Account:
    """One trading account: its venue, its books and its limits."""

    name: str
    venue: Venue
    ledger: Ledger
    risk: RiskEngine
    breakers: BreakerMonitor
    prices: dict[str, Decimal] = field(default_factory=dict)
    history: dict[str, deque[Decimal]] = field(default_factory=dict)
    last_trade_at: dict[str, datetime] = field(default_factory=dict)
    holds: dict[str, Decimal] = field(default_factory=dict)  # order id -> margin its remainder holds
    reserved: Decimal = ZERO
    # the equity peak and trading day as last journaled (``_journal_marks``)
    marked_peak: Decimal = ZERO
    marked_day: date | None = None
    marked_at: float = float("-inf")


class Engine:
    def __init__(
        self,
        venue: Venue,
        *,
        db: str | os.PathLike[str] = "journal.sqlite",
        clock: Clock | None = None,
        balance: Decimal = Decimal(100_000),
        settings: Settings | None = None,
        tick_interval: float = 0.25,
        id_token: str | None = None,
    ) -> None:
        self.clock = clock or SystemClock()
        self.settings = settings or Settings.defaults()
        self.db_path = db
        self.tick_interval = tick_interval
        self.journal: Journal | None = None
        self.trading_state = self.settings.initial_state
        self.trading_state_reason = ""
        self.last_halt: HaltReport | None = None
        self.last_reconciliation: dict[str, dict[str, Any]] = {}  # account -> its last reconcile() report
        self._initial_balance = balance
        self._accounts: dict[str, _Account] = {}
        self._add_account(venue, balance)
        self.account = venue.account
        self._id_token = id_token
        self._token = ""
        self._seq = 0
        self._orders: dict[str, Order] = {}
        self._by_client: dict[tuple[str, str], Order] = {}
        self._live: dict[str, Order] = {}
        self._fill_ids: set[tuple[str, str]] = set()
        self._ignored: dict[str, str] = {}  # order id -> reason: open at its venue, not tracked (ignore_order)
        self._realized_by_order: dict[str, Decimal] = {}
        self._unresolved_lookups = LookupBackoff()  # tick lookups of unresolved orders back off
        self._subscribers: list[EventStream] = []
        self._start_notices: deque[Notice] = deque(maxlen=100)
        self._algos: set[Algorithm] = set()
        self._contingent = ContingentManager(self)  # brackets, OCO, trailing stops (core/contingent.py)
        self.algos = AlgoManager(self)  # execution algorithms: TWAP, iceberg, limit-then-market
        self._halt_lock = asyncio.Lock()
        self._restoring: asyncio.Task[Any] | None = None  # the start's task, while it restores
        self._restored = asyncio.Event()
        self._submits: dict[str, asyncio.Event | None] = {}  # order id -> set when its submit has an answer
        self._closed = False
        self._stop = asyncio.Event()

    def _add_account(self, venue: Venue, balance: Decimal) -> None:
        name = venue.account
        if name in self._accounts:
            raise EngineError(f"account {name!r} is configured twice")
        self._accounts[name] = _Account(
            name=name,
            venue=venue,
            ledger=Ledger(account=name, initial_balance=balance),
            risk=RiskEngine(self.settings.limits_for(name), self.clock),
            breakers=BreakerMonitor(self.settings.breakers),
        )

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def paper(
        cls,
        db: str | os.PathLike[str] = "journal.sqlite",
        seed: int = 7,
        *,
        clock: Clock | None = None,
        balance: Decimal | int | str = Decimal(100_000),
        symbols: Sequence[SymbolSpec] | None = None,
        maker_fee: Decimal | str = Decimal("0.0002"),
        taker_fee: Decimal | str = Decimal("0.0004"),
        dials: SimDials | None = None,
        settings: Settings | None = None,
        tick_interval: float = 0.25,
        exchange: str | None = None,
        api_url: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> Engine:
        """A paper-trading engine: on the built-in simulated market (no keys, no network), or
        with ``exchange`` on that exchange's live public prices (fills still simulated)."""
        clock = clock or SystemClock()
        if exchange is not None:
            from core.venues.live_prices import LivePriceMarket

            market: SimMarket = LivePriceMarket(exchange, api_url=api_url, options=options)
        else:
            market = SimMarket(seed, symbols or DEFAULT_SPECS)
        venue = SimVenue(
            market,
            clock=clock,
            balance=Decimal(str(balance)),
            maker_fee=Decimal(str(maker_fee)),
            taker_fee=Decimal(str(taker_fee)),
            dials=dials,
            seed=seed,
        )
        # Paper ids never reach a real venue, so a token derived from the seed keeps them stable.
        token = hashlib.sha256(f"paper:{seed}".encode()).hexdigest()[:6]
        return cls(
            venue, db=db, clock=clock, balance=Decimal(str(balance)), settings=settings,
            tick_interval=tick_interval, id_token=token,
        )

    @classmethod
    def live(
        cls,
        exchange: str,
        *,
        api_key: str | None = None,
        secret: str | None = None,
        password: str | None = None,
        db: str | os.PathLike[str] = "journal.sqlite",
        api_url: str | None = None,
        sandbox: bool = False,
        account: str | None = None,
        clock: Clock | None = None,
        settings: Settings | None = None,
        options: dict[str, Any] | None = None,
        timeout_ms: int = 10_000,
        tick_interval: float = 0.25,  # cheap: the venue's tracker sends requests only for what is due
    ) -> Engine:
        """An engine trading on a real exchange through ccxt. ``api_url`` points ccxt at another
        base URL (a test server). Keys are kept out of logs, the journal and error messages."""
        from core.venues.ccxt_venue import CcxtCredentials, CcxtVenue

        clock = clock or SystemClock()
        venue = CcxtVenue(
            exchange, account=account, credentials=CcxtCredentials(api_key, secret, password), api_url=api_url,
            sandbox=sandbox, clock=clock, options=options, timeout_ms=timeout_ms,
            tracking=settings.tracking if settings is not None else None,
        )
        return cls(venue, db=db, clock=clock, balance=Decimal(0), settings=settings, tick_interval=tick_interval)

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None, *, db: str | os.PathLike[str] = "journal.sqlite",
                    clock: Clock | None = None) -> Engine:
        """The multi-account engine described by a config file's [accounts.NAME] sections (the
        first is the default account); with none, one paper account on the simulated market."""
        settings = Settings.load(path)
        clock = clock or SystemClock()
        venues: list[Venue] = []
        for name, acct in settings.accounts.items():
            venues.append(_venue_for(name, acct, clock, settings.tracking))
        if not venues:
            return cls.paper(db=db, clock=clock, settings=settings)
        engine = cls(venues[0], db=db, clock=clock, settings=settings, balance=Decimal(100_000),
                     tick_interval=0.25)
        for venue in venues[1:]:
            engine._add_account(venue, Decimal(100_000))
        return engine

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def venue(self) -> Venue:
        """The default account's venue."""
        return self._accounts[self.account].venue

    @property
    def ledger(self) -> Ledger:
        return self._accounts[self.account].ledger

    @property
    def accounts(self) -> list[str]:
        return list(self._accounts)

    async def start(self, *, warm_halt: bool = True) -> None:
        """Open the journal, restore every order, fill, position and the trading state.

        ``warm_halt=False`` leaves loading the halt's retry library to the caller
        (``warm_halt()``): the console does it after its first frame, so it does not compete
        with drawing the screen."""
        self.journal = await Journal.open(self.db_path, token=self._id_token)
        self._restoring = asyncio.current_task()
        try:
            await self._restore()
            if warm_halt:
                self.warm_halt()
        except BaseException:
            # e.g. the exchange refused the keys: close the journal (nothing was sent) and say why
            await self.journal.close()
            for acct in self._accounts.values():
                with suppress(Exception):
                    await acct.venue.close()
            self._closed = True
            raise
        finally:
            self._restored.set()

    async def _restore(self) -> None:
        assert self.journal is not None
        contents = await self.journal.load()
        self._token = contents.meta["token"]
        prefix = f"td{self._token}"
        fresh: list[_Account] = []
        for acct in self._accounts.values():
            snap = contents.accounts.get(acct.name)
            if snap is not None:
                acct.ledger = Ledger.restore(snap, contents.positions.get(acct.name, []))
            elif isinstance(acct.venue, SimVenue):
                await self.journal.write("account_opened", ts=self._ts(), account=acct.name, ledger=acct.ledger.snapshot())
            else:
                fresh.append(acct)  # a real account starts from what the exchange holds
        for order in contents.orders:
            self._track(order)
            if order.id.startswith(prefix) and order.id[len(prefix):].isdigit():
                self._seq = max(self._seq, int(order.id[len(prefix):]))
        self._ignored = json.loads(contents.state.get("ignored_orders", "{}"))
        for order_id in self._ignored:
            self._live.pop(order_id, None)  # before the venues restore: they are not followed either
        self._fill_ids.update((f.account, f.id) for f in contents.fills)
        self.trading_state = TradingState(contents.state.get("trading_state", self.settings.initial_state.value))
        self.trading_state_reason = contents.state.get("trading_state_reason", "")
        self._tell_venues()
        self._contingent.load(contents.state)  # first: the orders it holds in the core go to no venue
        for acct in self._accounts.values():
            marks = {b.symbol: b.mark for b in acct.ledger.books.values() if b.mark > 0}
            live = [o for o in self._live.values() if o.account == acct.name and not self._contingent.holds(o)]
            await acct.venue.connect()  # first: a venue on live prices learns its markets here
            if isinstance(acct.venue, SimVenue):
                acct.venue.restore(live, marks, acct.ledger)
            else:
                acct.venue.restore(live, marks)
            for sym in acct.venue.markets:
                q = acct.venue.quote(sym)
                if q is not None:
                    acct.prices[sym] = q.last
                    acct.history[sym] = deque([q.last], maxlen=_HISTORY)
        for acct in fresh:
            balance = await acct.venue.fetch_balance()
            acct.ledger = Ledger(account=acct.name, currency=balance.currency, initial_balance=balance.total)
            await self.journal.write("account_opened", ts=self._ts(), account=acct.name, ledger=acct.ledger.snapshot(),
                                     data={"source": acct.venue.name, "balance": str(balance.total)})
        for acct in self._accounts.values():  # as journaled: restored, or just opened
            acct.marked_peak, acct.marked_day = acct.ledger.equity_peak, acct.ledger.day
        for order in self._live.values():
            self._hold(order)
        for acct in self._accounts.values():
            if not isinstance(acct.venue, SimVenue):
                await self.reconcile(acct.name)
        # Orders whose submit answer never came back (crash or timeout): settle them first.
        for order in [o for o in self._live.values() if o.status in (S.SUBMITTING, S.UNRESOLVED)]:
            if order.status is S.SUBMITTING:
                self._set_status(order, S.UNRESOLVED, "the submit was interrupted; settling by client order id")
                await self.journal.write("order_unresolved", ts=self._ts(), order=order)
            await self._settle(order)
        # A cancel asked for just before the stop: a cancelling order takes no open reports, so
        # it would stay cancelling for good. Ask the venue what came of it. Never sent again: it
        # may have been half of a cancel-replace, or a contingent's own step.
        for order in [o for o in self._live.values() if o.status is S.CANCELLING]:
            await self._confirm_cancel(order)
        await self._contingent.catch_up()  # contingents act on what their orders did while down
        await self.algos.restore(contents.state)  # last: their children are settled and tracked

    def warm_halt(self) -> asyncio.Future[Any]:
        """Load the halt's retry library (tenacity, ~20 ms) in a thread, so the first halt does
        not pay for the import and whoever starts the engine does not wait for it either."""
        return asyncio.get_running_loop().run_in_executor(None, importlib.import_module, "tenacity")

    async def close(self) -> None:
        if self._closed:
            return
        self._stop.set()
        await self.algos.shutdown()  # before the journal closes; their state stays for the restart
        if self.journal is not None:
            for acct in self._accounts.values():
                books = [acct.ledger.book_snapshot(s) for s in acct.ledger.books]
                self.journal.write("engine_stopped", ts=self._ts(), account=acct.name, positions=books,
                                   ledger=acct.ledger.snapshot())
            self._closed = True
            await self.journal.close()
        self._closed = True
        for acct in self._accounts.values():
            await acct.venue.close()
        for stream in list(self._subscribers):
            stream.end()

    # -- placing ----------------------------------------------------------------------------

    async def place_order(self, request: OrderRequest) -> Order:
        """Place an order. A refused or failed order comes back with status rejected/failed and
        an error message; it is journaled either way."""
        return await self._place(request)

    async def _place(self, request: OrderRequest, *, closing: bool = False) -> Order:
        journal = self._journal()
        now = self.clock.now()
        self._seq += 1
        order = Order.from_request(request, id=f"td{self._token}{self._seq:06d}", account=self.account, now=now)
        acct = self._accounts.get(order.account)
        if acct is None:
            raise EngineError(f"unknown account {order.account!r} (accounts: {', '.join(self._accounts)})")
        if order.symbol not in acct.prices and order.symbol in acct.venue.markets and hasattr(acct.venue, "fetch_quote"):
            with suppress(VenueError):  # no price: the risk check will say so
                quote = await acct.venue.fetch_quote(order.symbol)
                if quote is not None:
                    acct.prices[order.symbol] = quote.last
        notes = acct.risk.round_to_market(order, acct.venue.markets[order.symbol]) if (
            acct.risk.limits.round_to_market and order.symbol in acct.venue.markets) else []
        reasons = acct.risk.check(order, self._risk_context(acct, order, closing))
        if reasons:
            _update(order, {"status": S.REJECTED, "error": "refused: " + "; ".join(reasons)})
            self._track(order)
            await journal.write("risk_refused", ts=self._ts(), order=order, data={"reasons": reasons, "notes": notes})
            self._publish(OrderUpdated(order.model_copy(), "risk_refused"))
            self._notice("warning", f"{order.symbol} {order.side.value} {order.amount} refused: {'; '.join(reasons)}")
            return order.model_copy()
        _update(order, {"status": S.SUBMITTING, "submitted_at": now, "submit_mark": acct.prices.get(order.symbol)})
        self._track(order)
        self._hold(order)
        # write-ahead: the order and its client order id are durable before the venue hears of it
        try:
            if notes:
                await journal.write("order_created", ts=now.isoformat(), order=order, data={"notes": notes})
            else:
                await journal.write_order("order_created", now.isoformat(), order)
        except BaseException as exc:
            # never sent (the journal failed, or the caller stopped waiting): not a live order
            why = "the placement was cancelled" if isinstance(exc, asyncio.CancelledError) else str(exc)
            self._set_status(order, S.FAILED, f"not sent: {why}")
            with suppress(Exception):
                journal.write("order_failed", ts=self._ts(), order=order)
            raise
        if self.trading_state is TradingState.HALTED and not closing:
            # halted while its record was being written: never sent (a halt waits only for the
            # submits already under way)
            self._set_status(order, S.REJECTED, "refused: trading is HALTED")
            await journal.write("risk_refused", ts=self._ts(), order=order, data={"reasons": ["trading is HALTED"]})
            self._publish(OrderUpdated(order.model_copy(), "risk_refused"))
            return order.model_copy()
        self._submits[order.id] = None  # an event only if a halt waits for the answer
        try:
            report = await acct.venue.submit(order)
        except OrderRejected as exc:
            self._set_status(order, S.REJECTED, str(exc))
            acct.breakers.record_reject(self.clock.monotonic())
            await journal.write("order_rejected", ts=self._ts(), order=order)
            self._publish(OrderUpdated(order.model_copy(), "order_rejected"))
            self._notice("warning", f"{order.symbol} order rejected by {acct.venue.name}: {exc}")
            await self._run_breakers(acct)
            return order.model_copy()
        except VenueError as exc:
            # The venue may have the order: never call it failed, settle it by lookup.
            self._set_status(order, S.UNRESOLVED, f"no answer from {acct.venue.name} ({exc}); settling by client order id")
            await journal.write("order_unresolved", ts=self._ts(), order=order)
            self._publish(OrderUpdated(order.model_copy(), "order_unresolved"))
            await self._settle(order)
            return order.model_copy()
        except BaseException:
            self._set_status(order, S.UNRESOLVED, "the submit was interrupted; settling by client order id")
            journal.write("order_unresolved", ts=self._ts(), order=order)
            raise
        finally:
            # the answer is applied below, or was above, before anything else runs: a halt
            # waiting for it cancels the order next
            if (answered := self._submits.pop(order.id, None)) is not None:
                answered.set()
        order.__dict__["acked_at"] = self.clock.now()  # as _update: the hot path skips pydantic's setattr
        await self._commit([self._absorb(order, report, "order_acked")])
        if self.trading_state is TradingState.HALTED and order.status.is_live and not closing and not self._halt_lock.locked():
            # acked after a halt that has ended (its deadline passed first): it must not work
            self._notice("error", f"{order.id} was accepted by {acct.venue.name} after the halt: cancelling it")
            return await self.cancel_order(order.id)
        return order.model_copy()

    async def place_market_order(self, symbol: str, side: str, amount: Decimal, **kw: Any) -> Order:
        return await self.place_order(OrderRequest(symbol=symbol, side=side, type="market", amount=amount, **kw))

    async def place_limit_order(self, symbol: str, side: str, amount: Decimal, price: Decimal, **kw: Any) -> Order:
        return await self.place_order(OrderRequest(symbol=symbol, side=side, type="limit", amount=amount, price=price, **kw))

    async def place_stop_order(
        self, symbol: str, side: str, amount: Decimal, stop_price: Decimal, price: Decimal | None = None, **kw: Any
    ) -> Order:
        kind = "stop_limit" if price is not None else "stop"
        return await self.place_order(
            OrderRequest(symbol=symbol, side=side, type=kind, amount=amount, stop_price=stop_price, price=price, **kw)
        )

    def check_order(self, request: OrderRequest) -> list[str]:
        """The risk verdict for a request, without placing it (the console shows it live)."""
        acct = self._accounts.get(request.account or self.account)
        if acct is None:
            return [f"unknown account {request.account!r}"]
        order = Order.from_request(request, id="preview", account=acct.name, now=self.clock.now())
        if acct.risk.limits.round_to_market and order.symbol in acct.venue.markets:
            acct.risk.round_to_market(order, acct.venue.markets[order.symbol])  # as placing would
        return acct.risk.check(order, self._risk_context(acct, order, False), record=False)

    def _risk_context(self, acct: _Account, order: Order, closing: bool, *, own_hold: Decimal = ZERO,
                      exclude: str | None = None) -> RiskContext:
        ledger = acct.ledger
        equity, used, exposure = ledger.figures()
        position = ledger.signed_size(order.symbol)
        pending = ZERO
        if position and self.trading_state is TradingState.REDUCING and not order.reduce_only:
            # Plain orders that "reduce" could flip the position together; reduce-only ones are
            # capped by the venue. Only here: it walks the open orders, the hot path must not.
            against = Side.SELL if position > 0 else Side.BUY
            pending = sum((o.amount - o.filled for o in self._live.values()
                           if o.account == acct.name and o.symbol == order.symbol and o.side is against
                           and not o.reduce_only and o.id != exclude), ZERO)
        return RiskContext(
            market=acct.venue.markets.get(order.symbol),
            last=acct.prices.get(order.symbol),
            position=position,
            equity=equity,
            free_margin=equity - used - (acct.reserved - own_hold),
            exposure=exposure,
            state=self.trading_state,
            duplicate_client_id=exclude is None and (order.account, order.client_order_id) in self._by_client,
            closing=closing,
            pending_reduce=pending,
        )

    # -- cancelling and modifying --------------------------------------------------------------

    async def cancel_order(self, order_id: str) -> Order:
        """Cancel one order. Cancelling a final order is a no-op that returns it."""
        journal = self._journal()
        order = self._get(order_id)
        if self._contingent.holds(order):  # a trailing stop held in the core: no venue knows it
            return await self._contingent.cancel_held(order)
        if order.status is S.UNRESOLVED:
            await self._settle(order)
        if order.is_final:
            return order.model_copy()
        if order.status in _PENDING:
            raise EngineError(
                f"order {order.id} is {order.status.value}: the venue has not confirmed it yet, so it cannot be cancelled now"
            )
        venue = self._accounts[order.account].venue
        if order.status is not S.CANCELLING:
            self._set_status(order, S.CANCELLING)
            journal.write("cancel_requested", ts=self._ts(), order=order)
        try:
            report = await venue.cancel(order)
        except OrderNotFound as exc:
            report = await self._lookup_after_missing(order, str(exc))
            if report is None:
                return order.model_copy()
        except VenueError as exc:
            # The cancel may have landed (a lost answer) and the order may have filled meanwhile:
            # ask the venue before saying anything about the order's state.
            report = None
            if exc.transient:
                with suppress(VenueError):
                    report = await self._look_up_cancelled(order)
            if report is None or report.status.is_live:
                # a fill the lookup found is journaled with the rest (booked in memory already)
                fills = self._absorb(order, report, "cancel_failed").fills if report is not None else []
                self._revert_cancel(order, f"cancel failed: {exc}")
                await self._commit([_Applied(order, fills, "cancel_failed")])
                self._notice("error", f"cancel of {order.id} failed: {exc}")
                return order.model_copy()
        applied = self._absorb(order, report, "order_cancelled")
        if order.status is S.CANCELLING and report.status.is_live:
            # The venue kept the order working (it refused the cancel): it is live again.
            self._set_status(order, report.status, report.error or "the venue refused the cancel")
            applied.kind = "cancel_failed"
        await self._commit([applied])
        return order.model_copy()

    async def cancel_all_orders(self, symbol: str | None = None) -> list[Order]:
        """Cancel every live order (of one symbol) on every account, using each venue's
        cancel-all where it has one. Returns the orders as they ended."""
        self._journal()
        held = await self._contingent.cancel_all_held(symbol)  # trailing stops held in the core
        targets = [o for o in self._live.values() if (symbol is None or o.symbol == symbol) and o.status not in _PENDING
                   and not self._contingent.holds(o)]
        if not targets:
            return held
        await asyncio.gather(*(self._cancel_account(acct, [o for o in targets if o.account == acct.name], None)
                               for acct in self._accounts.values()))
        return held + [o.model_copy() for o in targets]

    async def _cancel_account(
        self, acct: _Account, orders: list[Order], deadline: float | None, report: AccountHaltReport | None = None,
        *, each: bool = False,
    ) -> None:
        """Cancel ``orders`` on one account, concurrently: per-symbol cancel-all where the
        venue has it (unless ``each``), per order otherwise. With a deadline, transient errors
        are retried."""
        if not orders:
            return
        journal = self._journal()
        venue = acct.venue
        halt = self.settings.halt

        async def call(fn: Any) -> Any:
            if deadline is None:
                return await fn()
            return await retry_until(self.clock, deadline, halt, fn)

        for o in orders:
            if o.status is not S.CANCELLING and o.status.is_live:
                self._set_status(o, S.CANCELLING)
        # One audit event for the whole request; each order's projection is written once, with
        # the venue's answer (until then "open" is the truth on disk, and restart re-asks the venue).
        journal.write("cancel_requested", ts=self._ts(), account=acct.name, data={"orders": [o.id for o in orders]})
        applied: list[_Applied] = []
        if venue.has_cancel_all and not each:
            by_symbol: dict[str, list[Order]] = {}
            for o in orders:
                by_symbol.setdefault(o.symbol, []).append(o)
            results = await asyncio.gather(
                *(call(lambda sym=sym: venue.cancel_all(sym)) for sym in by_symbol), return_exceptions=True
            )
            for (sym, group), result in zip(by_symbol.items(), results, strict=True):
                if isinstance(result, BaseException):
                    if not isinstance(result, VenueError):
                        await self._commit(applied)  # what the venue already answered is booked first
                        raise result
                    for o in group:
                        self._revert_cancel(o, f"cancel failed: {result}")
                        applied.append(_Applied(o, [], "cancel_failed"))
                        if report is not None:
                            report.failed[o.id] = str(result)
                    self._notice("error", f"cancel-all for {sym} on {acct.name} failed: {result}")
                    continue
                for r in result:
                    o = self._by_client.get((acct.name, r.client_order_id))
                    if o is not None:
                        applied.append(self._absorb(o, r, "order_cancelled"))
        else:
            results = await asyncio.gather(*(call(lambda o=o: venue.cancel(o)) for o in orders), return_exceptions=True)
            for o, result in zip(orders, results, strict=True):
                if isinstance(result, OrderNotFound):
                    continue  # settled by the lookup below
                if isinstance(result, BaseException):
                    if not isinstance(result, VenueError):
                        await self._commit(applied)  # what the venue already answered is booked first
                        raise result
                    self._revert_cancel(o, f"cancel failed: {result}")
                    applied.append(_Applied(o, [], "cancel_failed"))
                    if report is not None:
                        report.failed[o.id] = str(result)
                    continue
                applied.append(self._absorb(o, result, "order_cancelled"))
        # Journal what the venue answered before waiting on anything else: a halt that hits its
        # deadline cancels this task, and answers already applied must not be lost.
        await self._commit(applied)
        # Orders the answers did not mention were already final at the venue: ask for their state.
        for o in orders:
            if o.status is S.CANCELLING:
                try:
                    r = await call(lambda o=o: self._look_up_cancelled(o))
                except VenueError as exc:
                    self._revert_cancel(o, f"cancel not confirmed: {exc}")
                    await self._commit([_Applied(o, [], "cancel_failed")])
                    continue
                if r is not None:
                    looked_up = self._absorb(o, r, "order_cancelled")
                    if o.status is S.CANCELLING and r.status.is_live:
                        self._revert_cancel(o, "the venue kept the order open")
                    await self._commit([looked_up])
        if report is not None:
            report.cancelled.extend(o.id for o in orders if o.status is S.CANCELLED)

    async def _confirm_cancel(self, order: Order) -> None:
        """Settle a cancel journaled before a restart: final if the venue ended the order, else
        open again (with a warning kept for the console), to be cancelled again if still wanted."""
        report = None
        with suppress(VenueError):
            report = await self._look_up_cancelled(order)
        if report is not None and not report.status.is_live:
            await self._commit([self._absorb(order, report, "order_cancelled")])
            return
        fills = self._absorb(order, report, "cancel_failed").fills if report is not None else []
        why = "a cancel sent before the restart was not confirmed by the venue: the order is open"
        if not self._revert_cancel(order, why):
            if fills:
                await self._commit([_Applied(order, fills, "order_updated")])
            self._notice("warning", f"{order.id}: a cancel sent before the restart could not be confirmed yet; "
                                    f"{self._accounts[order.account].venue.name} holds the order and completes "
                                    "the cancel at its next poll (it will not fire meanwhile)")
            return
        await self._commit([_Applied(order, fills, "cancel_failed")])
        self._notice("warning", f"{order.id}: {why}; cancel it again if still wanted")

    async def _look_up_cancelled(self, order: Order) -> VenueReport | None:
        """The venue's lookup of an order whose cancel was sent (None: unknown; VenueError: it
        could not be asked). An order the venue acked and no longer knows at all (OKX forgets
        cancelled unfilled orders after about two hours) works nowhere: left open it would hold
        its margin for good and fail every cancel. Its end is the fills its trades show,
        cancelled for the rest; None where the venue cannot read them, or the order is younger
        than ``FORGOTTEN_AFTER`` (kept open then)."""
        venue = self._accounts[order.account].venue
        report = await venue.fetch_order(order)
        # a stop held here counts from when it triggered and was sent (its acked_at is when it was held)
        at_venue = order.sent_at if order.emulated else order.acked_at
        if (report is None and order.venue_order_id is not None and at_venue is not None
                and self.clock.now() - at_venue >= FORGOTTEN_AFTER):
            report = await venue.fetch_forgotten(order)
            if report is not None:
                self._notice("warning", f"{order.id}: {venue.name} no longer knows the order, so it is not working "
                                        f"there: booked {report.status.value} with the {len(report.fills)} fill(s) "
                                        f"its trades show")
        return report

    def _revert_cancel(self, order: Order, why: str) -> bool:
        """Live again after a cancel that did not take; False when the venue completes that
        cancel itself (a stop it holds): the order stays cancelling, and never fires meanwhile."""
        if self._accounts[order.account].venue.cancel_pending(order):
            return False
        if order.status is S.CANCELLING:
            self._set_status(order, S.PARTIALLY_FILLED if order.filled else S.OPEN, why)
        return True

    async def modify_order(self, order_id: str, price: Decimal | None = None, amount: Decimal | None = None) -> Order:
        """Change a live order's price and/or amount: amended in place where the venue can,
        cancel-replace otherwise (the replacement is returned)."""
        journal = self._journal()
        order = self._get(order_id)
        problems = []
        if price is None and amount is None:
            problems.append("nothing to modify: give a new price and/or amount")
        for name, value in (("price", price), ("amount", amount)):
            if value is not None and (not isinstance(value, Decimal) or not value.is_finite() or value <= 0):
                problems.append(f"{name} must be a Decimal > 0, got {value!r}")
        if amount is not None and isinstance(amount, Decimal) and amount <= order.filled:
            problems.append(f"amount must be above the filled amount {order.filled}, got {amount}")
        if order.is_final or order.status in (*_PENDING, S.CANCELLING):
            problems.append(f"order {order.id} is {order.status.value} and cannot be modified")
        if self.trading_state is TradingState.HALTED:
            problems.append("trading is HALTED: orders cannot be modified")
        if self._contingent.holds(order):
            problems.append(f"order {order.id} is a trailing stop held in the core: cancel it and place a new one")
        if problems:
            raise EngineError("; ".join(problems))
        acct = self._accounts[order.account]
        venue = acct.venue
        # The modified order passes the same checks as a new one (its own margin hold aside).
        candidate = order.model_copy(update={k: v for k, v in (("price", price), ("amount", amount)) if v is not None})
        reasons = acct.risk.check(candidate, self._risk_context(acct, candidate, False, own_hold=acct.holds.get(order.id, ZERO),
                                                                 exclude=order.id), record=False)
        if reasons:
            await journal.write("modify_refused", ts=self._ts(), order=order, data={"reasons": reasons})
            raise EngineError(f"modify of {order.id} refused: {'; '.join(reasons)}")
        before = {"price": str(order.price), "amount": str(order.amount)}
        if not venue.can_amend:
            cancelled = await self.cancel_order(order.id)
            if cancelled.status is not S.CANCELLED or cancelled.remaining <= 0:
                raise EngineError(f"order {order.id} could not be replaced: it is {cancelled.status.value}")
            new_amount = (amount if amount is not None else order.amount) - order.filled
            new = await self.place_order(
                OrderRequest(
                    symbol=order.symbol, side=order.side, type=order.type, amount=new_amount,
                    price=price if price is not None else order.price, stop_price=order.stop_price,
                    time_in_force=order.time_in_force, reduce_only=order.reduce_only, leverage=order.leverage,
                    # the order's own tag: a contingent's leg links its replacement by it
                    tag=order.tag or f"replaces {order.id}", account=order.account,
                )
            )
            await journal.write("order_replaced", ts=self._ts(), order=self._orders[new.id], data={"replaces": order.id})
            return new
        try:
            report = await venue.amend(order, price, amount)
        except VenueError as exc:
            await journal.write("modify_refused", ts=self._ts(), order=order, data={"error": str(exc)})
            raise EngineError(f"modify of {order.id} refused by {venue.name}: {exc}") from None
        await self._commit([self._absorb(order, report, "order_modified")], data={"before": before})
        return order.model_copy()

    # -- trading state and the halt ---------------------------------------------------------------

    async def halt_trading(self, reason: str, flatten: bool = False) -> HaltReport:
        """Stop everything: persist HALTED, stop algorithms, cancel every open order on every
        account and prove the book is empty; with ``flatten`` also close every position.
        Idempotent, and never blocked by one slow venue (each account has the deadline)."""
        reason = reason.strip() or "halt"
        if self._restoring is not None and asyncio.current_task() is not self._restoring:
            # a halt during start-up acts on the restored book and state (the restore would
            # otherwise put back the state it read before the halt)
            await self._restored.wait()
        async with self._halt_lock:
            t0 = self.clock.monotonic()
            started = self.clock.now()
            await self._set_trading_state(TradingState.HALTED, reason, "halted")
            live_before = {o.id: o.account for o in self._live.values()}
            for algo in list(self._algos):
                try:
                    await algo.stop(f"halt: {reason}")
                except Exception as exc:  # noqa: BLE001 - a broken algorithm must not stop the halt
                    self._notice("error", f"algorithm {algo.name} did not stop cleanly: {exc}")
                self._algos.discard(algo)
            deadline = t0 + self.settings.halt.deadline_seconds
            reports = await asyncio.gather(*(self._halt_account(acct, deadline, flatten) for acct in self._accounts.values()))
            # Orders the algorithms' own stop cancelled (children, stops held in the core that no
            # venue knows) were cancelled by this halt too: the report names them with the rest.
            for r in reports:
                listed = set(r.cancelled)
                r.cancelled += [oid for oid, acct in live_before.items() if acct == r.account and oid not in listed
                                and self._orders[oid].status is S.CANCELLED]
            report = HaltReport(
                reason=reason, flatten=flatten, started_at=started, finished_at=self.clock.now(),
                seconds=self.clock.monotonic() - t0, accounts=list(reports),
            )
            self.last_halt = report
            await self._journal().write("halt_report", ts=self._ts(), data=report.model_dump(mode="json"))
            self._notice("info" if report.clean else "error", report.summary(), {"halt": report})
            return report

    async def emergency_close_all(self, reason: str = "emergency close all") -> HaltReport:
        """Halt and flatten every position with reduce-only market orders."""
        return await self.halt_trading(reason, flatten=True)

    async def _halt_account(self, acct: _Account, deadline: float, flatten: bool) -> AccountHaltReport:
        t0 = self.clock.monotonic()
        report = AccountHaltReport(account=acct.name, venue=acct.venue.name)
        try:
            await within(self.clock, deadline - t0, self._halt_account_work(acct, deadline, flatten, report))
        except TimeoutError:
            report.error = f"{acct.venue.name} did not answer within the {self.settings.halt.deadline_seconds:g} s deadline"
        except VenueError as exc:
            report.error = f"{acct.venue.name}: {exc}"
        except Exception as exc:  # noqa: BLE001 - the halt must always end in a report
            report.error = f"halt on {acct.name} failed: {type(exc).__name__}: {exc}"
            self._notice("error", report.error)
        if report.error:
            live = [o.id for o in self._live.values() if o.account == acct.name]
            report.remaining = sorted(set(report.remaining) | set(live))
        report.seconds = self.clock.monotonic() - t0
        return report

    async def _halt_account_work(self, acct: _Account, deadline: float, flatten: bool, report: AccountHaltReport) -> None:
        venue = acct.venue
        # Submits in flight now are answered, then cancelled with the stragglers below. A lookup
        # now could miss an order about to land (and call it failed while it works).
        in_flight = [self._answered(oid).wait() for oid in list(self._submits) if self._orders[oid].account == acct.name]
        for o in [o for o in self._live.values() if o.account == acct.name and o.status in _PENDING
                  and o.id not in self._submits]:
            await self._settle(o)  # an unresolved order may be live: find out before cancelling
        targets = [o for o in self._live.values() if o.account == acct.name and o.status not in _PENDING]
        await self._cancel_account(acct, targets, deadline, report)
        await asyncio.gather(*in_flight)
        # Prove it: read the venue's open orders back; cancel stragglers until the deadline.
        halt = self.settings.halt
        pause = halt.retry_initial_seconds
        while True:
            open_reports = await retry_until(self.clock, deadline, halt, venue.fetch_open_orders)
            stragglers = [self._by_client.get((acct.name, r.client_order_id)) for r in open_reports]
            known = [o for o in stragglers if o is not None]
            unknown = [r.client_order_id for r, o in zip(open_reports, stragglers, strict=True) if o is None]
            listed = {o.id for o in known}
            # Live to the engine, yet not on the venue's book: a stop the venue holds itself until
            # it triggers (or an order still in flight). The book is not empty while one is left.
            unlisted = [o for o in self._live.values() if o.account == acct.name and o.id not in listed]
            held = [o for o in unlisted if o.status not in _PENDING]
            if not open_reports and not held:
                report.verified = True
                report.remaining = [o.id for o in unlisted]
                break
            if self.clock.monotonic() >= deadline:
                report.verified = not open_reports
                report.remaining = sorted(listed | {o.id for o in unlisted}) + [f"external:{cid}" for cid in unknown]
                break
            for r, o in zip(open_reports, stragglers, strict=True):
                if o is not None:
                    await self._commit([self._absorb(o, r, "order_updated")])
            await self._cancel_account(acct, [o for o in known if o.status.is_live and o.status not in _PENDING], deadline, report)
            # one by one, not by cancel-all: a held stop is cancelled where it is held, even
            # while the exchange refuses requests
            await self._cancel_account(acct, [o for o in held if o.status.is_live], deadline, report, each=True)
            # Orders the journal does not know (placed elsewhere), and ones the engine took as
            # cancelled that the venue still lists, go too, where cancel-all can reach them.
            orphans = [(r, o) for r, o in zip(open_reports, stragglers, strict=True) if o is None or not o.status.is_live]
            if orphans and venue.has_cancel_all:
                for sym in sorted({r.symbol for r, _ in orphans if r.symbol}):
                    with suppress(VenueError):  # read back and tried again below, until the deadline
                        await retry_until(self.clock, deadline, halt, lambda sym=sym: venue.cancel_all(sym))
            elif unknown and not known and not held:
                report.remaining = [f"external:{cid}" for cid in unknown]
                break
            else:
                for _, o in orphans:
                    if o is not None:
                        with suppress(VenueError):
                            await retry_until(self.clock, deadline, halt, lambda o=o: venue.cancel(o))
            # then read the book again, after a pause: a venue slow to apply its cancels is not
            # asked again and again at full speed
            await self.clock.sleep(max(0.0, min(pause, deadline - self.clock.monotonic())))
            pause = min(pause * 2, halt.retry_max_seconds)
        for oid in list(report.failed):  # a cancel that failed and later succeeded is not a failure
            if oid in self._orders and self._orders[oid].is_final:
                report.failed.pop(oid, None)
        if flatten:
            await self._flatten(acct, deadline, report)

    async def _flatten(self, acct: _Account, deadline: float, report: AccountHaltReport) -> None:
        positions = await retry_until(self.clock, deadline, self.settings.halt, acct.venue.fetch_positions)
        for symbol, size in sorted(positions.items()):
            side = Side.SELL if size > 0 else Side.BUY
            order = await self._place(
                OrderRequest(symbol=symbol, side=side, type=OrderType.MARKET, amount=abs(size), reduce_only=True,
                             tag="halt flatten", account=acct.name),
                closing=True,
            )
            if order.filled > 0:
                report.positions_closed.append(symbol)
            if order.status is S.REJECTED or order.status is S.FAILED:
                report.failed[order.id] = order.error or order.status.value
        left = await retry_until(self.clock, deadline, self.settings.halt, acct.venue.fetch_positions)
        report.positions_left = [f"{sym} {size}" for sym, size in sorted(left.items())]

    async def resume_trading(self, reason: str) -> None:
        """Lift HALTED or REDUCING. Explicit and journaled: a reason is required."""
        if not reason or not reason.strip():
            raise EngineError("resuming needs a reason (it is journaled)")
        async with self._halt_lock:  # never in the middle of a halt: after it
            if self.trading_state is TradingState.ACTIVE:
                return
            for acct in self._accounts.values():
                acct.breakers.rearm(self.account_status(acct.name), self.clock.monotonic())
            await self._set_trading_state(TradingState.ACTIVE, reason.strip(), "resumed")

    async def set_reducing(self, reason: str) -> None:
        """Allow only orders that reduce a position (a softer stop than the halt)."""
        if self.trading_state is TradingState.HALTED:
            raise EngineError("trading is HALTED: resume first, then set REDUCING")
        await self._set_trading_state(TradingState.REDUCING, reason.strip() or "reducing", "reducing")

    async def _set_trading_state(self, state: TradingState, reason: str, kind: str) -> None:
        self.trading_state = state
        self.trading_state_reason = reason
        self._tell_venues()
        await self._journal().write(
            kind, ts=self._ts(), data={"state": state.value, "reason": reason},
            state={"trading_state": state.value, "trading_state_reason": reason},
        )
        self._publish(TradingStateChanged(state, reason, self.clock.now()))
        self._notice("warning" if state is not TradingState.ACTIVE else "info", f"trading {state.value}: {reason}")

    def _tell_venues(self) -> None:
        for acct in self._accounts.values():
            acct.venue.halted = self.trading_state is TradingState.HALTED

    def register_algorithm(self, algo: Algorithm) -> None:
        self._algos.add(algo)

    def unregister_algorithm(self, algo: Algorithm) -> None:
        self._algos.discard(algo)

    async def _run_breakers(self, acct: _Account) -> None:
        if self.trading_state is TradingState.HALTED:
            return
        trips = acct.breakers.evaluate(self.account_status(acct.name), self.clock.monotonic())
        if not trips:
            return
        halting = [t for t in trips if t.action is TradingState.HALTED]
        if halting:
            reason = "; ".join(t.reason for t in halting)
            await self._journal().write("breaker_tripped", ts=self._ts(), account=acct.name,
                                        data={"breakers": [t.breaker for t in halting], "reason": reason})
            await self.halt_trading(reason)
        elif self.trading_state is TradingState.ACTIVE:
            reason = "; ".join(t.reason for t in trips)
            await self._journal().write("breaker_tripped", ts=self._ts(), account=acct.name,
                                        data={"breakers": [t.breaker for t in trips], "reason": reason})
            await self._set_trading_state(TradingState.REDUCING, reason, "reducing")

    # -- reconciliation -----------------------------------------------------------------------

    async def reconcile(self, account: str | None = None) -> dict[str, Any]:
        """Compare the journal with the venue and make them agree: orders the venue has that the
        journal does not are adopted (tagged external), journal orders the venue no longer lists
        open are settled by lookup (filled / cancelled; missed fills booked once), and what could
        not be settled is named. A live account that cannot be reconciled is set REDUCING.
        The report (also journaled, and kept in ``last_reconciliation``) names the missed fills
        booked per order as well: ``fills`` maps an order id to their count and amount."""
        acct = self._accounts[account or self.account]
        venue = acct.venue
        result: dict[str, Any] = {"account": acct.name, "at": self._ts(), "adopted": [], "settled": {}, "fills": {},
                                  "missing": [], "ignored": [], "error": None}

        def booked(applied: _Applied) -> _Applied:
            if applied.fills:
                result["fills"][applied.order.id] = {"count": len(applied.fills),
                                                     "amount": str(sum(f.amount for f in applied.fills))}
            return applied

        try:
            open_reports = await venue.fetch_open_orders()
            open_ids = {r.client_order_id for r in open_reports}
            applied = []
            for r in open_reports:
                order = self._by_client.get((acct.name, r.client_order_id))
                if order is None:
                    order = self._adopt(acct, r)
                    result["adopted"].append(order.id)
                elif order.id in self._ignored:
                    result["ignored"].append(order.id)  # still open there, left alone (ignore_order)
                    continue
                applied.append(booked(self._absorb(order, r, "order_reconciled")))
            await self._commit(applied)
            for order in [o for o in self._live.values() if o.account == acct.name and o.client_order_id not in open_ids
                          and not self._contingent.holds(o)]:
                report = await venue.fetch_order(order)
                if report is None:
                    result["missing"].append(order.id)
                    continue
                await self._commit([booked(self._absorb(order, report, "order_reconciled"))])
                result["settled"][order.id] = order.status.value
        except VenueError as exc:
            result["error"] = str(exc)
        self.last_reconciliation[acct.name] = result
        await self._journal().write("reconciled", ts=self._ts(), account=acct.name, data=result)
        if result["error"] and self.trading_state is TradingState.ACTIVE:
            await self._set_trading_state(TradingState.REDUCING, f"reconciliation of {acct.name} failed: {result['error']}",
                                          "reducing")
        elif result["adopted"] or result["settled"] or result["missing"]:
            self._notice("warning", f"reconciled {acct.name}: {len(result['adopted'])} adopted, "
                                    f"{len(result['settled'])} settled, {len(result['missing'])} not found at the venue")
        return result

    async def ignore_order(self, order_id: str, reason: str) -> Order:
        """Stop tracking an adopted external order without telling its venue: the desk leaves it
        to whoever placed it. It leaves the live set (no margin hold, no reconciliation, its
        venue reports are dropped) and stays ignored after a restart: the ``ignored_orders``
        state is written in the same transaction as the ``order_ignored`` event, and the
        order's projection keeps the venue's last word (it is still open there). A halt still
        cancels it: the halt empties the venue of every open order, ignored or not."""
        journal = self._journal()
        if not reason or not reason.strip():
            raise EngineError("ignoring an order needs a reason (it is journaled)")
        order = self._get(order_id)
        if order.id in self._ignored:
            return order.model_copy()
        if order.tag != "external":
            raise EngineError(f"order {order.id} was placed by this desk: cancel it instead "
                              "(only adopted external orders can be ignored)")
        if not order.status.is_live:
            raise EngineError(f"order {order.id} is {order.status.value}: only a live order can be ignored")
        why = self._ignored[order.id] = reason.strip()
        self._live.pop(order.id, None)
        acct = self._accounts[order.account]
        acct.reserved -= acct.holds.pop(order.id, ZERO)
        _update(order, {"error": f"ignored: {why}", "updated_at": self.clock.now(), "revision": order.revision + 1})
        await journal.write("order_ignored", ts=self._ts(), order=order, data={"reason": why},
                            state={"ignored_orders": json.dumps(self._ignored)})
        self._publish(OrderUpdated(order.model_copy(), "order_ignored"))
        self._notice("warning", f"ignoring {order.id} ({order.symbol} {order.side.value} {order.amount} on {order.account}): "
                                f"{why}; it stays open at {acct.venue.name}, untracked")
        return order.model_copy()

    def ignored_orders(self) -> dict[str, str]:
        """Order id -> reason, for every order ``ignore_order`` took out of tracking."""
        return dict(self._ignored)

    def _adopt(self, acct: _Account, report: VenueReport) -> Order:
        """An order found at the venue that this journal never placed (another client, a lost journal)."""
        self._seq += 1
        now = self.clock.now()
        kind = OrderType.LIMIT if report.price is not None and report.order_type != "market" else OrderType.MARKET
        order = Order(
            id=f"td{self._token}{self._seq:06d}", client_order_id=report.client_order_id, account=acct.name,
            venue_order_id=report.venue_order_id, symbol=report.symbol or "?", side=Side(report.side or "buy"),
            type=kind, amount=report.amount or report.filled, price=report.price if kind is OrderType.LIMIT else None,
            status=S.OPEN, tag="external", created_at=now, updated_at=now,
        )
        self._track(order)
        self._hold(order)
        if hasattr(acct.venue, "restore"):
            acct.venue.restore([order], {})  # track it from now on
        return order

    # -- signals ----------------------------------------------------------------------------

    async def check_signal(self, signal: Signal) -> SignalVerdict:
        acct = self._accounts[self.account]
        return screen_signal(
            signal,
            filters=self.settings.signals,
            now=self.clock.now(),
            state=self.trading_state,
            quote=acct.venue.quote(signal.symbol) if signal.symbol in acct.venue.markets else None,
            prices=acct.history.get(signal.symbol, ()),
            last_trade_at=acct.last_trade_at.get(signal.symbol),
            has_position=acct.ledger.signed_size(signal.symbol) != 0,
        )

    async def execute_signal(self, signal: Signal, sizing: Sizing) -> tuple[SignalVerdict, list[Order]]:
        """Confirm a signal and place it: the entry (market, or limit at ``entry``) and, once it
        fills, reduce-only stop-loss and take-profit orders sized to the filled amount."""
        verdict = await self.check_signal(signal)
        journal = self._journal()
        if not verdict.confirmed:
            await journal.write("signal_refused", ts=self._ts(), data=verdict.model_dump(mode="json"))
            self._notice("warning", f"signal {signal.symbol} {signal.direction.value} refused: {'; '.join(verdict.reasons)}")
            return verdict, []
        await journal.write("signal_confirmed", ts=self._ts(), data=verdict.model_dump(mode="json"))
        acct = self._accounts[self.account]
        market = acct.venue.markets[signal.symbol]
        position = acct.ledger.signed_size(signal.symbol)
        if signal.direction is Direction.CLOSE:
            side = Side.SELL if position > 0 else Side.BUY
            order = await self.place_order(OrderRequest(symbol=signal.symbol, side=side, type="market",
                                                        amount=abs(position), reduce_only=True, tag=f"signal {signal.source}"))
            return verdict, [order]
        side = Side.BUY if signal.direction is Direction.LONG else Side.SELL
        price = signal.entry or acct.prices[signal.symbol]
        if sizing.amount is not None:
            amount = sizing.amount
        else:
            assert sizing.equity_fraction is not None
            amount = acct.ledger.equity * sizing.equity_fraction * sizing.leverage / price
        amount = floor_to_step(amount, market.lot_size)
        if amount <= 0:
            raise EngineError(f"sizing gives no tradable amount of {signal.symbol} (lot size {market.lot_size})")
        orders = await self.place_with_protection(
            OrderRequest(symbol=signal.symbol, side=side, type="limit" if signal.entry else "market", amount=amount,
                         price=signal.entry, leverage=sizing.leverage, tag=f"signal {signal.source}"),
            stop_loss=signal.stop_loss, take_profit=signal.take_profit, allow_resting=True,
        )
        return verdict, orders

    async def place_with_protection(
        self, request: OrderRequest, *, stop_loss: Decimal | None = None, take_profit: Decimal | None = None,
        allow_resting: bool = False,
    ) -> list[Order]:
        """Place an entry and, for what it filled at once, reduce-only stop-loss and take-profit
        orders. A resting entry with protection is refused unless ``allow_resting``: keeping
        legs in step with later fills needs a contingent (bracket) order."""
        protected = stop_loss is not None or take_profit is not None
        if protected and request.type is not OrderType.MARKET and not allow_resting:
            raise EngineError("stop-loss/take-profit need a market entry here (a resting entry needs a bracket order)")
        entry = await self.place_order(request)
        orders = [entry]
        if entry.filled > 0:
            exit_side = entry.side.opposite
            if stop_loss is not None:
                orders.append(await self.place_order(OrderRequest(
                    symbol=entry.symbol, side=exit_side, type="stop", amount=entry.filled,
                    stop_price=stop_loss, reduce_only=True, tag=f"stop-loss for {entry.id}", account=entry.account)))
            if take_profit is not None:
                orders.append(await self.place_order(OrderRequest(
                    symbol=entry.symbol, side=exit_side, type="take_profit", amount=entry.filled,
                    stop_price=take_profit, reduce_only=True, tag=f"take-profit for {entry.id}", account=entry.account)))
        return orders

    # -- contingent orders (core/contingent.py) ----------------------------------------------------

    async def place_bracket_order(self, symbol: str, side: str, amount: Decimal, entry: Decimal | None = None,
                                  stop_loss: Decimal | None = None, take_profit: Decimal | None = None,
                                  **kw: Any) -> Contingent:
        """An entry (market, or limit at ``entry``) whose fills get reduce-only stop-loss and
        take-profit legs sized to the filled amount; a fill of one leg cancels the other."""
        return await self._contingent.place_bracket_order(symbol, side, amount, entry, stop_loss, take_profit, **kw)

    async def place_oco_order(self, symbol: str, side: str, amount: Decimal, price: Decimal, stop_price: Decimal,
                              **kw: Any) -> Contingent:
        """A limit and a stop for one quantity (reduce-only by default): one fills, the other goes."""
        return await self._contingent.place_oco_order(symbol, side, amount, price, stop_price, **kw)

    async def place_oco(self, first: OrderRequest, second: OrderRequest) -> Contingent:
        return await self._contingent.place_oco(first, second)

    async def place_trailing_stop(self, symbol: str, side: str, amount: Decimal, **kw: Any) -> Order:
        """A stop held in the core that trails the best price (trail_amount or trail_percent,
        optional activation_price) and closes with a reduce-only market order."""
        return await self._contingent.place_trailing_stop(symbol, side, amount, **kw)

    async def update_stop_loss(self, symbol: str, price: Decimal, account: str | None = None) -> list[Order]:
        return await self._contingent.update_protection("stop_loss", symbol, price, account)

    async def update_take_profit(self, symbol: str, price: Decimal, account: str | None = None) -> list[Order]:
        return await self._contingent.update_protection("take_profit", symbol, price, account)

    def get_contingent(self, contingent_id: str) -> Contingent | None:
        return self._contingent.get(contingent_id)

    # -- reading ----------------------------------------------------------------------------

    async def get_order_by_id(self, order_id: str) -> Order | None:
        order = self._orders.get(order_id) or self._by_client.get((self.account, order_id))
        return order.model_copy() if order else None

    async def get_active_orders(self, symbol: str | None = None) -> list[Order]:
        return [o.model_copy() for o in self._live.values() if symbol is None or o.symbol == symbol]

    async def get_orders(self) -> list[Order]:
        return [o.model_copy() for o in self._orders.values()]

    async def get_positions(self) -> list[Position]:
        return [p for acct in self._accounts.values() for p in acct.ledger.positions()]

    async def get_account_status(self, account: str | None = None) -> AccountStatus:
        return self.account_status(account)

    def account_status(self, account: str | None = None) -> AccountStatus:
        acct = self._accounts[account or self.account]
        return acct.ledger.status(self.trading_state, reserved=acct.reserved)

    def prices(self, account: str | None = None) -> dict[str, Decimal]:
        return dict(self._accounts[account or self.account].prices)

    def markets(self, account: str | None = None) -> dict[str, Any]:
        return dict(self._accounts[account or self.account].venue.markets)

    def events(self) -> EventStream:
        """Subscribe to engine events from now on: ``async for event in engine.events(): ...``.
        A subscriber that comes after ``start()`` first gets the notices the start said."""
        stream = EventStream(self._subscribers)
        if self._restored.is_set():  # what the start said (a restore's warnings) comes first
            for notice in self._start_notices:
                stream.put(notice)
        self._subscribers.append(stream)
        return stream

    # -- background loops -------------------------------------------------------------------

    async def tick(self) -> None:
        """One round of the background work: poll each venue, book what changed, mark positions."""
        self._journal()
        failed: list[tuple[str, VenueError]] = []
        for acct in self._accounts.values():
            try:
                updates = await acct.venue.poll()
            except VenueError as exc:  # one exchange down must not stop tracking the others
                failed.append((acct.name, exc))
                continue
            await self._apply_updates(acct, updates)
            if self._contingent.active:
                await self._contingent.on_prices(acct.name, updates.prices)  # trailing stops follow the prices
        unresolved = [o for o in self._live.values() if o.status is S.UNRESOLVED]
        self._unresolved_lookups.keep_only(o.id for o in unresolved)
        now = self.clock.monotonic()
        for order in unresolved:
            if self._unresolved_lookups.due(order.id, now):  # a venue's poll report still settles it at once
                await self._settle(order)
        if failed:
            # every failing account is reported; the first is raised, so the caller (``run``) says so too
            for name, exc in failed[1:]:
                self._notice("error", f"poll of {name} failed: {exc}")
            raise failed[0][1]

    async def run(self) -> None:
        """Run the background loops until the engine closes. Venue errors are reported and the
        loop carries on; anything else propagates to the caller (a console worker, a script)."""
        while not self._stop.is_set():
            await self.clock.sleep(self.tick_interval)
            if self._stop.is_set():
                break
            try:
                await self.tick()
            except VenueError as exc:
                self._notice("error", f"poll failed: {exc}")

    def stop(self) -> None:
        self._stop.set()

    # -- internals ----------------------------------------------------------------------------

    def _journal(self) -> Journal:
        if self.journal is None or self._closed:
            raise EngineError("the engine is not running: use 'async with Engine.paper(...) as engine' or await engine.start()")
        return self.journal

    def _ts(self) -> str:
        return self.clock.now().isoformat()

    def _get(self, order_id: str) -> Order:
        order = self._orders.get(order_id) or self._by_client.get((self.account, order_id))
        if order is None:
            raise EngineError(f"unknown order {order_id!r}")
        return order

    def _answered(self, order_id: str) -> asyncio.Event:
        """The event set when the submit of ``order_id`` (in flight) has its answer."""
        event = self._submits[order_id]
        if event is None:
            event = self._submits[order_id] = asyncio.Event()
        return event

    def _track(self, order: Order) -> None:
        self._orders[order.id] = order
        self._by_client.setdefault((order.account, order.client_order_id), order)  # first owner keeps it
        if order.status.is_live:
            self._live[order.id] = order
        else:
            self._live.pop(order.id, None)

    def _hold(self, order: Order) -> None:
        """Keep the margin held by the order's open remainder up to date (incrementally: a
        risk check must not walk every open order)."""
        acct = self._accounts.get(order.account)
        if acct is None:
            return
        old = acct.holds.pop(order.id, ZERO)
        new = ZERO
        if order.status.is_live and not order.reduce_only:
            ref = order.price or order.stop_price or acct.prices.get(order.symbol, ZERO)
            new = (order.amount - order.filled) * ref / order.leverage
            acct.holds[order.id] = new
        acct.reserved += new - old

    def _set_status(self, order: Order, status: S, error: str | None = None) -> None:
        changes: dict[str, Any] = {
            "status": check_transition(order.id, order.status, status),
            "updated_at": self.clock.now(),
            "revision": order.revision + 1,
        }
        if error is not None:
            changes["error"] = error
        _update(order, changes)
        if status.is_final:
            self._live.pop(order.id, None)
        self._hold(order)

    def _absorb(self, order: Order, report: VenueReport, kind: str) -> _Applied:
        """Apply one venue report to an order in memory: fills (de-duplicated by trade id) into
        the ledger, then the reported status through the state table."""
        now = self.clock.now()
        acct = self._accounts[order.account]
        changes: dict[str, Any] = {}
        if report.venue_order_id:
            if order.emulated and order.venue_order_id is None:
                changes["sent_at"] = now  # held here until it triggered: at the exchange from now
            changes["venue_order_id"] = report.venue_order_id
        fills = []
        for vf in report.fills:
            key = (order.account, vf.trade_id)
            if key in self._fill_ids:
                continue  # a fill reported twice is booked once
            if not (vf.amount > 0 and vf.price > 0 and vf.amount.is_finite() and vf.price.is_finite()):
                self._notice("error", f"{acct.venue.name} reported fill {vf.trade_id} of {vf.amount} @ {vf.price} "
                                      f"for {order.id}: not a trade, ignored")
                continue
            self._fill_ids.add(key)
            fill = Fill(
                id=vf.trade_id, order_id=order.id, client_order_id=order.client_order_id, account=order.account,
                symbol=order.symbol, side=order.side, amount=vf.amount, price=vf.price, fee=vf.fee,
                fee_currency=vf.fee_currency, base_fee=vf.base_fee, liquidity=vf.liquidity, timestamp=vf.timestamp,
            )
            if vf.fee_unpriced:  # booked as 0 rather than guessed: the desk must know the PnL misses it
                self._notice("warning", f"fee of {vf.fee_unpriced} on fill {vf.trade_id} of {order.id} booked as 0: "
                                        f"no price of it in {vf.fee_currency} is known")
            cost = (order.average_price or ZERO) * order.filled + vf.amount * vf.price
            filled = order.filled + vf.amount
            _update(order, {
                "filled": filled,
                "average_price": clean((cost / filled).quantize(_AVG_PLACES)),
                "fee": order.fee + vf.fee,
                "fee_currency": vf.fee_currency,
            })
            realized_before = acct.ledger.realized
            acct.ledger.apply_fill(fill, order.leverage)
            realized = acct.ledger.realized - realized_before
            if realized:
                self._realized_by_order[order.id] = self._realized_by_order.get(order.id, ZERO) + realized
            acct.last_trade_at[order.symbol] = vf.timestamp
            if order.status.is_final and order.status not in (S.CANCELLED, S.EXPIRED):
                self._notice("error", f"fill {vf.trade_id} arrived for {order.status.value} order {order.id}; booked")
            else:
                new = status_after_fill(order.status, order.filled >= order.amount)
                if new is not order.status:
                    _update(order, {"status": check_transition(order.id, order.status, new)})
            fills.append(fill)
        if report.price is not None and order.price is not None:
            changes["price"] = report.price
        if report.amount is not None:
            changes["amount"] = report.amount
        try:
            target = settle_reported(order.id, order.status, report.status)
        except InvalidOrderTransition as exc:
            target = None
            self._notice("error", f"inconsistent report from {acct.venue.name}: {exc}")
        status = target if target is not None else order.status
        changes["status"] = status
        if report.error and status in (S.REJECTED, S.CANCELLED, S.EXPIRED, S.FAILED):
            changes["error"] = report.error
            if target in (S.REJECTED, S.FAILED):  # a working order died at the venue: said, not only shown
                self._notice("error", f"{order.id} {target.value} on {acct.venue.name}: {report.error}")
        changes["updated_at"] = now
        changes["revision"] = order.revision + 1
        _update(order, changes)
        if order.status.is_final:
            self._live.pop(order.id, None)
            if order.id in self._realized_by_order:  # one closing order is one trade for the streak
                acct.breakers.record_trade(self._realized_by_order.pop(order.id))
        self._hold(order)
        return _Applied(order, fills, kind if kind == "order_modified" else _KIND_FOR_STATUS.get(order.status, kind))

    async def _commit(self, applied: Iterable[_Applied], data: dict[str, Any] | None = None) -> None:
        """Journal what ``_absorb`` changed (one group commit), publish it, run the breakers."""
        journal = self._journal()
        applied = list(applied)
        if not applied:
            return
        ts = self._ts()
        fill_writes = []
        touched: dict[str, set[str]] = {}
        for a in applied:
            for fill in a.fills:
                touched.setdefault(fill.account, set()).add(fill.symbol)
                acct = self._accounts[fill.account]
                ledger = acct.ledger
                acct.marked_peak, acct.marked_day = ledger.equity_peak, ledger.day  # journaled below
                fill_writes.append(journal.write(
                    "fill", ts=ts, fill=fill,
                    positions=[ledger.book_snapshot(fill.symbol)], ledger=ledger.snapshot(),
                ))
            last = journal.write_order(a.kind, ts, a.order) if data is None else journal.write(a.kind, ts=ts, order=a.order, data=data)
        try:
            await last  # the queue commits in order: every earlier write is settled by now
        finally:
            # A batch that fails is retried write by write, so a fill can fail under an order
            # write that succeeds: it must not pass for recorded (raised once the rest is done).
            lost = [exc for f in fill_writes if f.done() and not f.cancelled() and (exc := f.exception()) is not None]
        if self._subscribers:
            for a in applied:
                self._publish(OrderUpdated(a.order.model_copy(), a.kind))
                for fill in a.fills:
                    self._publish(FillReceived(fill))
            for account, symbols in touched.items():
                for sym in sorted(symbols):
                    self._publish(PositionChanged(self._accounts[account].ledger.position(sym)))
                self._publish(AccountChanged(self.account_status(account)))
        for account in touched:
            await self._run_breakers(self._accounts[account])
        if self._contingent.active:  # last: brackets and OCO act on what is now durable (re-entry is queued)
            await self._contingent.on_applied(applied)
        if lost:  # booked in memory, so followed up like any fill (exits, breakers), but not on disk
            raise lost[0]

    async def _apply_updates(self, acct: _Account, updates: VenueUpdates) -> None:
        applied = []
        for report in updates.reports:
            order = self._by_client.get((acct.name, report.client_order_id))
            if order is None:
                self._notice("warning", f"{acct.venue.name} reported unknown order {report.client_order_id}; ignored")
                continue
            if order.id in self._ignored:
                continue  # ignore_order: the venue may follow it until the next restart; the desk does not
            if order.status is S.UNRESOLVED and order.acked_at is None:
                order.acked_at = self.clock.now()  # the venue has it: this report is the ack, as in _settle
            applied.append(self._absorb(order, report, "order_updated"))
        if updates.prices:
            # Prices first: what reacts to these reports (contingent legs, algorithms) is risk-checked
            # against this poll's prices, not the previous one's. The ledger is still marked after
            # the fills are booked.
            acct.prices.update(updates.prices)
        await self._commit(applied)
        if updates.prices:
            now = self.clock.now()
            for sym, price in updates.prices.items():
                hist = acct.history.get(sym)
                if hist is None:
                    hist = acct.history[sym] = deque(maxlen=_HISTORY)
                hist.append(price)
            changed = [p for sym, price in updates.prices.items() if (p := acct.ledger.mark(sym, price, now)) is not None]
            if self._subscribers:
                self._publish(PricesUpdated(dict(updates.prices), now))
                for pos in changed:
                    self._publish(PositionChanged(pos))
                self._publish(AccountChanged(self.account_status(acct.name)))
            self._journal_marks(acct)
            if changed:
                await self._run_breakers(acct)

    def _journal_marks(self, acct: _Account) -> None:
        """The equity peak and the day's starting equity move with prices, not only with fills,
        which are what journal the ledger: journal it when the day rolls and, while the peak
        rises, every few seconds. A restart's drawdown and daily-loss breakers then count from
        the figures the desk had, not from a lower peak or a start of day taken after a loss."""
        ledger, now = acct.ledger, self.clock.monotonic()
        if acct.marked_day is None:  # the ledger's first day: nothing rolled, start of day unchanged
            acct.marked_day = ledger.day
        rolled = ledger.day != acct.marked_day
        if not rolled and (ledger.equity_peak <= acct.marked_peak or now - acct.marked_at < _PEAK_JOURNAL_SECONDS):
            return
        before = acct.marked_peak, acct.marked_day, acct.marked_at
        acct.marked_peak, acct.marked_day, acct.marked_at = ledger.equity_peak, ledger.day, now
        # not awaited: durable with the next commit, as a cancel's request is; the poll goes on
        written = self._journal().write("ledger_marked", ts=self._ts(), account=acct.name, ledger=ledger.snapshot())

        def failed(f: asyncio.Future[None]) -> None:
            if not f.cancelled() and f.exception() is not None:  # retrieved; the next mark writes again
                acct.marked_peak, acct.marked_day, acct.marked_at = before
                self._notice("error", f"the {acct.name} ledger's marks were not journaled: {f.exception()}")

        written.add_done_callback(failed)

    async def _settle(self, order: Order) -> None:
        """Resolve an order whose submit answer was lost by asking the venue for its client id."""
        venue = self._accounts[order.account].venue
        try:
            report = await venue.fetch_order(order)
        except VenueError as exc:
            self._notice("warning", f"lookup of unresolved order {order.id} failed ({exc}); will retry")
            return
        if report is None:
            if not venue.lookup_is_definitive:
                return  # maybe not visible yet: the tracker asks again
            if order.status is S.SUBMITTING:
                self._set_status(order, S.UNRESOLVED)
            self._set_status(order, S.FAILED, f"never reached {venue.name}: a lookup by client order id found nothing")
            await self._journal().write("order_failed", ts=self._ts(), order=order)
            self._publish(OrderUpdated(order.model_copy(), "order_failed"))
            return
        if order.acked_at is None:
            order.acked_at = self.clock.now()
        await self._commit([self._absorb(order, report, "order_settled")])

    async def _lookup_after_missing(self, order: Order, why: str) -> VenueReport | None:
        try:
            report = await self._look_up_cancelled(order)
        except VenueError as exc:  # unknown either way: keep it live, the tracker settles it
            report, why = None, f"{why}; lookup failed: {exc}"
        if report is None:
            self._notice("error", f"cancel of {order.id} failed: {why}")
            self._revert_cancel(order, f"cancel failed: {why}")
            # through _commit, as every revert: the contingent manager sees its leg working again
            await self._commit([_Applied(order, [], "cancel_failed")])
        return report

    def _publish(self, event: EngineEvent) -> None:
        for stream in self._subscribers:
            stream.put(event)

    def _notice(self, level: str, text: str, data: dict[str, object] | None = None) -> None:
        notice = Notice(level, text, self.clock.now(), data or {})
        if not self._restored.is_set():  # said while starting: a console subscribes only after
            self._start_notices.append(notice)
        if self._subscribers:
            self._publish(notice)
