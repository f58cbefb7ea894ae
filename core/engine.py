"""The engine: the facade every client uses (the console, scripts, tests).

Order path: pre-checks -> journal the intent (durable) -> venue -> journal the answer ->
publish. Every venue answer, whether it comes back from a request or from the background poll,
goes through ``_absorb``, the one place where fills are de-duplicated, the ledger is updated and
the order state table is applied.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core.clock import Clock, SystemClock
from core.errors import EngineError, OrderNotFound, OrderRejected, VenueError
from core.events import (
    AccountChanged,
    EngineEvent,
    FillReceived,
    Notice,
    OrderUpdated,
    PositionChanged,
    PricesUpdated,
)
from core.journal import Journal
from core.ledger import Ledger
from core.models import (
    ZERO,
    AccountStatus,
    Fill,
    Order,
    OrderRequest,
    OrderStatus,
    Position,
    TradingState,
)
from core.numbers import clean
from core.order_states import InvalidOrderTransition, check_transition, settle_reported, status_after_fill
from core.streams import EventStream
from core.venues.base import Venue, VenueReport, VenueUpdates
from core.venues.sim import SimDials, SimVenue
from core.venues.sim_market import DEFAULT_SPECS, SimMarket, SymbolSpec

S = OrderStatus
_AVG_PLACES = Decimal("1e-10")

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


@dataclass(slots=True)
class _Applied:
    order: Order
    fills: list[Fill]
    kind: str


class Engine:
    def __init__(
        self,
        venue: Venue,
        *,
        db: str | os.PathLike[str] = "journal.sqlite",
        clock: Clock | None = None,
        balance: Decimal = Decimal(100_000),
        tick_interval: float = 0.25,
        id_token: str | None = None,
    ) -> None:
        self.venue = venue
        self.account = venue.account
        self.db_path = db
        self.clock = clock or SystemClock()
        self.tick_interval = tick_interval
        self.ledger = Ledger(account=self.account, initial_balance=balance)
        self.journal: Journal | None = None
        self.trading_state = TradingState.ACTIVE
        self.trading_state_reason = ""
        self._id_token = id_token
        self._token = ""
        self._seq = 0
        self._orders: dict[str, Order] = {}
        self._by_client: dict[tuple[str, str], Order] = {}
        self._live: dict[str, Order] = {}
        self._fill_ids: set[tuple[str, str]] = set()
        self._subscribers: list[EventStream] = []
        self._prices: dict[str, Decimal] = {}
        self._running = False
        self._closed = False
        self._stop = asyncio.Event()

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
        tick_interval: float = 0.25,
        exchange: str | None = None,
    ) -> Engine:
        """A paper-trading engine on the built-in simulated market: no keys, no network."""
        if exchange is not None:
            raise EngineError("paper trading on live exchange prices needs the ccxt venue, which is not built yet")
        clock = clock or SystemClock()
        venue = SimVenue(
            SimMarket(seed, symbols or DEFAULT_SPECS),
            clock=clock,
            balance=Decimal(str(balance)),
            maker_fee=Decimal(str(maker_fee)),
            taker_fee=Decimal(str(taker_fee)),
            dials=dials,
            seed=seed,
        )
        # Paper ids never reach a real venue, so a token derived from the seed keeps them stable.
        token = hashlib.sha256(f"paper:{seed}".encode()).hexdigest()[:6]
        return cls(venue, db=db, clock=clock, balance=Decimal(str(balance)), tick_interval=tick_interval, id_token=token)

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Open the journal, restore every order, fill, position and the trading state."""
        self.journal = await Journal.open(self.db_path, token=self._id_token)
        contents = await self.journal.load()
        self._token = contents.meta["token"]
        prefix = f"td{self._token}"
        acct = contents.accounts.get(self.account)
        if acct is not None:
            self.ledger = Ledger.restore(acct, contents.positions.get(self.account, []))
        else:
            await self.journal.write("account_opened", ts=self._ts(), ledger=self.ledger.snapshot())
        for order in contents.orders:
            self._track(order)
            if order.id.startswith(prefix) and order.id[len(prefix):].isdigit():
                self._seq = max(self._seq, int(order.id[len(prefix):]))
        self._fill_ids.update((f.account, f.id) for f in contents.fills)
        self.trading_state = TradingState(contents.state.get("trading_state", TradingState.ACTIVE.value))
        self.trading_state_reason = contents.state.get("trading_state_reason", "")
        marks = {b.symbol: b.mark for b in self.ledger.books.values() if b.mark > 0}
        if isinstance(self.venue, SimVenue):
            self.venue.restore(list(self._live.values()), marks, self.ledger)
        await self.venue.connect()
        for sym in self.venue.markets:
            q = self.venue.quote(sym)
            if q is not None:
                self._prices[sym] = q.last
        # Orders whose submit answer never came back (crash or timeout): settle them first.
        for order in [o for o in self._live.values() if o.status in (S.SUBMITTING, S.UNRESOLVED)]:
            if order.status is S.SUBMITTING:
                self._set_status(order, S.UNRESOLVED, "the submit was interrupted; settling by client order id")
                await self.journal.write("order_unresolved", ts=self._ts(), order=order)
            await self._settle(order)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self.journal is not None:
            books = [self.ledger.book_snapshot(s) for s in self.ledger.books]
            await self.journal.write("engine_stopped", ts=self._ts(), positions=books, ledger=self.ledger.snapshot())
            await self.journal.close()
        await self.venue.close()
        for stream in list(self._subscribers):
            stream.end()

    # -- placing ----------------------------------------------------------------------------

    async def place_order(self, request: OrderRequest) -> Order:
        """Place an order. A refused or failed order comes back with status rejected/failed and
        an error message; it is journaled either way."""
        journal = self._journal()
        now = self.clock.now()
        self._seq += 1
        order = Order.from_request(request, id=f"td{self._token}{self._seq:06d}", account=self.account, now=now)
        reasons = self.precheck(order)
        if reasons:
            order.status = S.REJECTED
            order.error = "refused: " + "; ".join(reasons)
            self._track(order)
            await journal.write("risk_refused", ts=self._ts(), order=order, data={"reasons": reasons})
            self._publish(OrderUpdated(order.model_copy(), "risk_refused"))
            self._notice("warning", f"{order.symbol} {order.side.value} {order.amount} refused: {'; '.join(reasons)}")
            return order.model_copy()
        order.status = S.SUBMITTING
        order.submitted_at = now
        self._track(order)
        await journal.write("order_created", ts=self._ts(), order=order)  # write-ahead: durable before the venue hears
        try:
            report = await self.venue.submit(order)
        except OrderRejected as exc:
            self._set_status(order, S.REJECTED, str(exc))
            await journal.write("order_rejected", ts=self._ts(), order=order)
            self._publish(OrderUpdated(order.model_copy(), "order_rejected"))
            self._notice("warning", f"{order.symbol} order rejected by {self.venue.name}: {exc}")
            return order.model_copy()
        except VenueError as exc:
            # The venue may have the order: never call it failed, settle it by lookup.
            self._set_status(order, S.UNRESOLVED, f"no answer from {self.venue.name} ({exc}); settling by client order id")
            await journal.write("order_unresolved", ts=self._ts(), order=order)
            self._publish(OrderUpdated(order.model_copy(), "order_unresolved"))
            await self._settle(order)
            return order.model_copy()
        except BaseException:
            self._set_status(order, S.UNRESOLVED, "the submit was interrupted; settling by client order id")
            journal.write("order_unresolved", ts=self._ts(), order=order)
            raise
        order.acked_at = self.clock.now()
        await self._commit([self._absorb(order, report, "order_acked")])
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

    def precheck(self, order: Order) -> list[str]:
        """Reasons to refuse an order before it is sent (every reason, not just the first)."""
        reasons = []
        if order.symbol not in self.venue.markets:
            reasons.append(f"unknown symbol {order.symbol} (markets: {', '.join(sorted(self.venue.markets))})")
        if (order.account, order.client_order_id) in self._by_client:
            reasons.append(f"duplicate client order id {order.client_order_id}")
        if self.trading_state is TradingState.HALTED:
            reasons.append(f"trading is HALTED ({self.trading_state_reason or 'no reason given'}): resume first")
        return reasons

    # -- cancelling and modifying --------------------------------------------------------------

    async def cancel_order(self, order_id: str) -> Order:
        """Cancel one order. Cancelling a final order is a no-op that returns it."""
        journal = self._journal()
        order = self._get(order_id)
        if order.status is S.UNRESOLVED:
            await self._settle(order)
        if order.is_final:
            return order.model_copy()
        if order.status in (S.NEW, S.SUBMITTING, S.UNRESOLVED):
            raise EngineError(
                f"order {order.id} is {order.status.value}: the venue has not confirmed it yet, so it cannot be cancelled now"
            )
        before = order.status if order.status is not S.CANCELLING else (S.PARTIALLY_FILLED if order.filled else S.OPEN)
        if order.status is not S.CANCELLING:
            self._set_status(order, S.CANCELLING)
            journal.write("cancel_requested", ts=self._ts(), order=order)
        try:
            report = await self.venue.cancel(order)
        except OrderNotFound as exc:
            report = await self._lookup_after_missing(order, str(exc))
            if report is None:
                return order.model_copy()
        except VenueError as exc:
            self._set_status(order, before, f"cancel failed: {exc}")
            await journal.write("cancel_failed", ts=self._ts(), order=order)
            self._publish(OrderUpdated(order.model_copy(), "cancel_failed"))
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
        """Cancel every live order (of one symbol), using the venue's cancel-all where it has one."""
        journal = self._journal()
        targets = [
            o for o in self._live.values()
            if (symbol is None or o.symbol == symbol) and o.status not in (S.NEW, S.SUBMITTING, S.UNRESOLVED)
        ]
        if not targets:
            return []
        if not self.venue.has_cancel_all:
            return list(await asyncio.gather(*(self.cancel_order(o.id) for o in targets)))
        by_symbol: dict[str, list[Order]] = {}
        for o in targets:
            by_symbol.setdefault(o.symbol, []).append(o)
            if o.status is not S.CANCELLING:
                self._set_status(o, S.CANCELLING)
                journal.write("cancel_requested", ts=self._ts(), order=o)
        results = await asyncio.gather(*(self.venue.cancel_all(sym) for sym in by_symbol), return_exceptions=True)
        applied: list[_Applied] = []
        for (sym, orders), result in zip(by_symbol.items(), results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, VenueError):
                    raise result
                for o in orders:
                    self._set_status(o, S.PARTIALLY_FILLED if o.filled else S.OPEN, f"cancel failed: {result}")
                    applied.append(_Applied(o, [], "cancel_failed"))
                self._notice("error", f"cancel-all for {sym} failed: {result}")
                continue
            seen = {r.client_order_id for r in result}
            for r in result:
                o = self._by_client.get((self.account, r.client_order_id))
                if o is not None:
                    applied.append(self._absorb(o, r, "order_cancelled"))
            for o in orders:  # not in the venue's answer: already final there, ask for its state
                if o.client_order_id not in seen:
                    r = await self.venue.fetch_order(o)
                    if r is not None:
                        applied.append(self._absorb(o, r, "order_cancelled"))
        await self._commit(applied)
        return [o.model_copy() for o in targets]

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
        if order.is_final or order.status in (S.NEW, S.SUBMITTING, S.UNRESOLVED, S.CANCELLING):
            problems.append(f"order {order.id} is {order.status.value} and cannot be modified")
        if problems:
            raise EngineError("; ".join(problems))
        before = {"price": str(order.price), "amount": str(order.amount)}
        if not self.venue.can_amend:
            cancelled = await self.cancel_order(order.id)
            if cancelled.status is not S.CANCELLED or cancelled.remaining <= 0:
                raise EngineError(f"order {order.id} could not be replaced: it is {cancelled.status.value}")
            new_amount = (amount if amount is not None else order.amount) - order.filled
            return await self.place_order(
                OrderRequest(
                    symbol=order.symbol, side=order.side, type=order.type, amount=new_amount,
                    price=price if price is not None else order.price, stop_price=order.stop_price,
                    time_in_force=order.time_in_force, reduce_only=order.reduce_only, leverage=order.leverage,
                    tag=f"replaces {order.id}",
                )
            )
        try:
            report = await self.venue.amend(order, price, amount)
        except VenueError as exc:
            await journal.write("modify_refused", ts=self._ts(), order=order, data={"error": str(exc)})
            raise EngineError(f"modify of {order.id} refused by {self.venue.name}: {exc}") from None
        await self._commit([self._absorb(order, report, "order_modified")], data={"before": before})
        return order.model_copy()

    # -- reading ----------------------------------------------------------------------------

    async def get_order_by_id(self, order_id: str) -> Order | None:
        order = self._orders.get(order_id) or self._by_client.get((self.account, order_id))
        return order.model_copy() if order else None

    async def get_active_orders(self, symbol: str | None = None) -> list[Order]:
        return [o.model_copy() for o in self._live.values() if symbol is None or o.symbol == symbol]

    async def get_orders(self) -> list[Order]:
        return [o.model_copy() for o in self._orders.values()]

    async def get_positions(self) -> list[Position]:
        return self.ledger.positions()

    async def get_account_status(self) -> AccountStatus:
        return self.account_status()

    def account_status(self) -> AccountStatus:
        return self.ledger.status(self.trading_state, reserved=self._reserved_margin())

    def prices(self) -> dict[str, Decimal]:
        return dict(self._prices)

    def events(self) -> EventStream:
        """Subscribe to engine events from now on: ``async for event in engine.events(): ...``"""
        stream = EventStream(self._subscribers)
        self._subscribers.append(stream)
        return stream

    # -- background loops -------------------------------------------------------------------

    async def tick(self) -> None:
        """One round of the background work: poll the venue, book what changed, mark positions."""
        self._journal()
        updates = await self.venue.poll()
        await self._apply_updates(updates)
        for order in [o for o in self._live.values() if o.status is S.UNRESOLVED]:
            await self._settle(order)

    async def run(self) -> None:
        """Run the background loops until the engine closes. Venue errors are reported and the
        loop carries on; anything else propagates to the caller (a console worker, a script)."""
        self._running = True
        try:
            while not self._stop.is_set():
                await self.clock.sleep(self.tick_interval)
                if self._stop.is_set():
                    break
                try:
                    await self.tick()
                except VenueError as exc:
                    self._notice("error", f"{self.venue.name} poll failed: {exc}")
        finally:
            self._running = False

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

    def _track(self, order: Order) -> None:
        self._orders[order.id] = order
        self._by_client.setdefault((order.account, order.client_order_id), order)  # first owner keeps it
        if order.status.is_live:
            self._live[order.id] = order
        else:
            self._live.pop(order.id, None)

    def _set_status(self, order: Order, status: S, error: str | None = None) -> None:
        order.status = check_transition(order.id, order.status, status)
        if error is not None:
            order.error = error
        order.updated_at = self.clock.now()
        order.revision += 1
        if status.is_final:
            self._live.pop(order.id, None)

    def _reserved_margin(self) -> Decimal:
        total = ZERO
        for o in self._live.values():
            if o.reduce_only:
                continue
            ref = o.price or o.stop_price or self._prices.get(o.symbol, ZERO)
            total += (o.amount - o.filled) * ref / o.leverage
        return total

    def _absorb(self, order: Order, report: VenueReport, kind: str) -> _Applied:
        """Apply one venue report to an order in memory: fills (de-duplicated by trade id) into
        the ledger, then the reported status through the state table."""
        now = self.clock.now()
        if report.venue_order_id:
            order.venue_order_id = report.venue_order_id
        fills = []
        for vf in report.fills:
            key = (order.account, vf.trade_id)
            if key in self._fill_ids:
                continue  # a fill reported twice is booked once
            self._fill_ids.add(key)
            fill = Fill(
                id=vf.trade_id, order_id=order.id, client_order_id=order.client_order_id, account=order.account,
                symbol=order.symbol, side=order.side, amount=vf.amount, price=vf.price, fee=vf.fee,
                fee_currency=vf.fee_currency, liquidity=vf.liquidity, timestamp=vf.timestamp,
            )
            cost = (order.average_price or ZERO) * order.filled + vf.amount * vf.price
            order.filled += vf.amount
            order.average_price = clean((cost / order.filled).quantize(_AVG_PLACES))
            order.fee += vf.fee
            order.fee_currency = vf.fee_currency
            self.ledger.apply_fill(fill, order.leverage)
            if order.status.is_final and order.status not in (S.CANCELLED, S.EXPIRED):
                self._notice("error", f"fill {vf.trade_id} arrived for {order.status.value} order {order.id}; booked")
            else:
                new = status_after_fill(order.status, order.filled >= order.amount)
                if new is not order.status:
                    order.status = check_transition(order.id, order.status, new)
            fills.append(fill)
        if report.price is not None and order.price is not None:
            order.price = report.price
        if report.amount is not None:
            order.amount = report.amount
        try:
            target = settle_reported(order.id, order.status, report.status)
        except InvalidOrderTransition as exc:
            target = None
            self._notice("error", f"inconsistent report from {self.venue.name}: {exc}")
        if target is not None:
            order.status = target
        if report.error and order.status in (S.REJECTED, S.CANCELLED, S.EXPIRED, S.FAILED):
            order.error = report.error
        order.updated_at = now
        order.revision += 1
        if order.status.is_final:
            self._live.pop(order.id, None)
        return _Applied(order, fills, kind if kind == "order_modified" else _KIND_FOR_STATUS.get(order.status, kind))

    async def _commit(self, applied: Iterable[_Applied], data: dict[str, Any] | None = None) -> None:
        """Journal what ``_absorb`` changed (one group commit), then publish it."""
        journal = self._journal()
        applied = list(applied)
        if not applied:
            return
        ts = self._ts()
        last = None
        touched: set[str] = set()
        for a in applied:
            for fill in a.fills:
                touched.add(fill.symbol)
                journal.write(
                    "fill", ts=ts, fill=fill,
                    positions=[self.ledger.book_snapshot(fill.symbol)], ledger=self.ledger.snapshot(),
                )
            last = journal.write(a.kind, ts=ts, order=a.order, data=data)
        assert last is not None
        await last  # the queue commits in order: the last write durable means all are
        if not self._subscribers:
            return
        for a in applied:
            self._publish(OrderUpdated(a.order.model_copy(), a.kind))
            for fill in a.fills:
                self._publish(FillReceived(fill))
        for sym in sorted(touched):
            self._publish(PositionChanged(self.ledger.position(sym)))
        if touched:
            self._publish(AccountChanged(self.account_status()))

    async def _apply_updates(self, updates: VenueUpdates) -> None:
        applied = []
        for report in updates.reports:
            order = self._by_client.get((self.account, report.client_order_id))
            if order is None:
                self._notice("warning", f"{self.venue.name} reported unknown order {report.client_order_id}; ignored")
                continue
            applied.append(self._absorb(order, report, "order_updated"))
        await self._commit(applied)
        if updates.prices:
            now = self.clock.now()
            self._prices.update(updates.prices)
            changed = [p for sym, price in updates.prices.items() if (p := self.ledger.mark(sym, price, now)) is not None]
            self._publish(PricesUpdated(dict(updates.prices), now))
            for pos in changed:
                self._publish(PositionChanged(pos))
            self._publish(AccountChanged(self.account_status()))

    async def _settle(self, order: Order) -> None:
        """Resolve an order whose submit answer was lost by asking the venue for its client id."""
        try:
            report = await self.venue.fetch_order(order)
        except VenueError as exc:
            self._notice("warning", f"lookup of unresolved order {order.id} failed ({exc}); will retry")
            return
        if report is None:
            if not self.venue.lookup_is_definitive:
                return  # maybe not visible yet: the tracker asks again
            self._set_status(order, S.FAILED, f"never reached {self.venue.name}: a lookup by client order id found nothing")
            await self._journal().write("order_failed", ts=self._ts(), order=order)
            self._publish(OrderUpdated(order.model_copy(), "order_failed"))
            return
        if order.acked_at is None:
            order.acked_at = self.clock.now()
        await self._commit([self._absorb(order, report, "order_settled")])

    async def _lookup_after_missing(self, order: Order, why: str) -> VenueReport | None:
        report = await self.venue.fetch_order(order)
        if report is None:
            self._set_status(order, S.PARTIALLY_FILLED if order.filled else S.OPEN, f"cancel failed: {why}")
            await self._journal().write("cancel_failed", ts=self._ts(), order=order)
            self._publish(OrderUpdated(order.model_copy(), "cancel_failed"))
        return report

    def _publish(self, event: EngineEvent) -> None:
        for stream in self._subscribers:
            stream.put(event)

    def _notice(self, level: str, text: str) -> None:
        self._publish(Notice(level, text, self.clock.now()))
