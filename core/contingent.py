"""Contingent orders: brackets, OCO pairs and trailing stops, kept by the core.

A contingent links orders the venue sees as unrelated. The manager keeps the links and makes the
orders follow them: a bracket's reduce-only stop-loss and take-profit are sized to what its entry
has filled and minus what they have filled themselves; an OCO's two orders share one quantity,
so a fill of either shrinks or cancels the other; a trailing stop is held here (an emulated
``Order``, open in the engine, unknown to any venue) and sends a reduce-only market order when
the price comes back by the trail from its best level.

Durability: every link change is a journal event ("bracket_created", "oco_linked",
"trailing_created", "leg_placed", "trailing_moved", "contingent_done", ...) written together with
the contingent's JSON under ``contingent:<id>`` in the journal's state table. A leg is journaled
before it is sent (the contingent's tag names it), so a restart links every order and then
catches up on what happened while down. So is each cancel the manager sends ("leg_cancelling"):
a restart that books it tells it from the trader's, which ends an OCO.

How it reacts: the engine calls ``on_applied`` after committing venue updates and ``on_prices``
after each poll. The contingents concerned are marked and each is *stepped*: its orders are
compared with what they should be and at most one thing is done (place, resize, cancel), then it
is stepped again until nothing is left to do. Steps read state, not events, so a step that runs
twice, late or after a restart is harmless. One task steps at a time; updates that arrive
meanwhile (the manager's own orders included) are queued for that task.

Native where the venue can (``core.venues.base.native_support``; OKX through ccxt), emulated
here otherwise (the sim, Binance, OCO everywhere):

* a native bracket sends its entry with the exits attached (ccxt's unified stopLoss/takeProfit).
  The exchange places them itself once the entry has filled completely, as ONE algo order
  carrying both prices: when one fires the other is gone with it. The core models that honestly
  as one order, the bracket's "exits" leg (a reduce-only stop at the stop-loss, or a take-profit
  without one; its tag names both prices). Its client order id is chosen and journaled before
  the entry is sent, so the link survives a restart; the engine order is created when the entry
  has filled, and tracked like any other. An entry that ends part-filled gets no exits from the
  exchange: the bracket turns emulated and the core protects the fill.
* a native trailing stop is an ordinary engine order the exchange keeps (OKX move_order_stop).
* whatever the exchange refuses natively is placed emulated instead, with a notice saying so.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.errors import EngineError, TradedeskError
from core.events import OrderUpdated
from core.models import ZERO, Dec, Order, OrderRequest, OrderStatus, OrderType, Side, TimeInForce, TradingState
from core.numbers import clean, round_to_step, to_decimal
from core.risk import protective_problems
from core.venues.base import NATIVE_PREFIX, NativeExits, NativeTrail, native_support

if TYPE_CHECKING:
    from core.engine import Engine, _Account

S = OrderStatus
STATE_PREFIX = "contingent:"
_WAITING = frozenset({S.NEW, S.SUBMITTING, S.UNRESOLVED, S.CANCELLING})  # an answer is due: act when it comes
_MAX_STEPS = 100  # per contingent and drain: more means a step keeps undoing itself (a bug), so stop and say so
_EXIT_ROLES = ("stop_loss", "take_profit")
_FINAL_KIND = {S.FILLED: "order_filled", S.CANCELLED: "order_cancelled", S.REJECTED: "order_rejected"}
_UNCONFIRMED = frozenset({S.NEW, S.SUBMITTING, S.UNRESOLVED})  # the venue may not have it: nothing relies on it yet
_RETRY_FIRST, _RETRY_MAX = 0.5, 10.0  # seconds before a failed cancel or resize is tried again, doubling


class Leg(BaseModel):
    """One order slot of a contingent: how to (re)place it and every order that has served it."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    tag: str  # carried by every order of the leg: links it even before its id is journaled
    side: Side
    type: OrderType
    price: Dec | None = None
    stop_price: Dec | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = True
    leverage: Dec = Decimal(1)
    client_order_id: str | None = None  # native legs: chosen (and journaled) before anything is sent
    orders: list[str] = Field(default_factory=list)  # oldest first; the last one is the working order
    dropped: str | None = None  # why the leg is no longer kept (it is never placed again)


class Contingent(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    id: str
    kind: Literal["bracket", "oco", "trailing"]
    account: str
    symbol: str
    amount: Dec
    legs: dict[str, Leg]
    done: str | None = None  # why it ended; None while active
    native: bool = False  # kept by the exchange (see the module docstring); the core keeps the link
    overfill: Dec = ZERO  # exits beyond what they protect, already reported
    # orders this manager cancels, journaled before the cancel is sent: a restart that finds one
    # cancelled knows it was not the trader's doing (an OCO goes on with the rest, not ends)
    cancelled: list[str] = Field(default_factory=list)
    # trailing stop only
    trail_amount: Dec | None = None
    trail_percent: Dec | None = None
    activation_price: Dec | None = None
    best: Dec | None = None  # best price since activation; None until activated


def _number(name: str, value: object, *, optional: bool = False) -> Decimal | None:
    """A price or amount from a caller: Decimal, int or numeric string (never a float), > 0."""
    if value is None:
        if optional:
            return None
        raise EngineError(f"{name} is required")
    if isinstance(value, (float, bool)):
        raise EngineError(f"{name} must be a Decimal, int or numeric string, got {value!r} (floats are refused)")
    try:
        number = to_decimal(value)
    except ValueError:
        raise EngineError(f"{name} must be a number, got {value!r}") from None
    if not number.is_finite() or number <= 0:
        raise EngineError(f"{name} must be a finite number > 0, got {value}")
    return number


def _side(value: object) -> Side:
    try:
        return Side(str(value).lower())
    except ValueError:
        raise EngineError(f"side must be buy or sell, got {value!r}") from None


class ContingentManager:
    """Owned by the engine; also registered as one of its algorithms so the halt stops it."""

    name = "contingent orders"

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.active: dict[str, Contingent] = {}
        self._finished: dict[str, Contingent] = {}
        self._by_order: dict[str, str] = {}  # order id -> contingent id
        self._by_tag: dict[str, tuple[str, str]] = {}  # leg tag -> (contingent id, role)
        self._held: set[str] = set()  # live orders held here (trailing stops): no venue knows them
        self._dirty: dict[str, None] = {}  # contingents to step, in arrival order
        # account -> symbol -> (low, high, last) of the prices not looked at yet: a trailing stop
        # must see a cross that came and went while the manager was busy
        self._prices: dict[str, dict[str, tuple[Decimal, Decimal, Decimal]]] = {}
        # (order id, action) that failed -> (retry at, the wait after that): tried again on a later
        # tick (a 502 passes), never in a loop within one drain
        self._stuck: dict[tuple[str, str], tuple[float, float]] = {}
        self._replacing: set[str] = set()  # contingents waiting on an unconfirmed replacement: looked at each poll
        self._lock = asyncio.Lock()
        self._busy = False
        self._last_id = 0

    # -- reading ------------------------------------------------------------------------------

    def get(self, contingent_id: str) -> Contingent | None:
        c = self.active.get(contingent_id) or self._finished.get(contingent_id)
        return c.model_copy(deep=True) if c else None

    def holds(self, order: Order) -> bool:
        """True for a live order held here: cancel it here, send it to no venue."""
        return order.id in self._held

    # -- engine hooks ---------------------------------------------------------------------------

    async def on_applied(self, applied: Iterable[Any]) -> None:
        """After the engine committed venue updates: step the contingents of those orders."""
        for a in applied:
            order = a.order
            cid = self._by_order.get(order.id)
            if cid is None and order.tag in self._by_tag:
                cid, role = self._by_tag[order.tag]  # a leg still being placed: its link is journaled next
                c = self.active[cid]
                self._link(c, role, order)
                leg = c.legs[role]
                if leg.dropped is not None and order.status.is_live and leg.orders[-1] == order.id:
                    # a trader's modify on a cancel-replace venue: its cancel dropped the leg, the
                    # replacement (same tag) is the leg's working order again
                    leg.dropped = None
                    await self._write(c, "leg_linked", {"role": role, "order_id": order.id})
            if cid is not None:
                self._dirty[cid] = None
        await self._kick()

    async def on_prices(self, account: str, prices: dict[str, Decimal]) -> None:
        """After a poll: trailing stops follow the new prices."""
        if prices and any(c.kind == "trailing" and c.account == account for c in self.active.values()):
            seen = self._prices.setdefault(account, {})
            for symbol, price in prices.items():
                low, high, _ = seen.get(symbol, (price, price, price))
                seen[symbol] = (min(low, price), max(high, price), price)
        self._retry_due()
        await self._kick()

    def _retry_due(self) -> None:
        """Each poll: step again the contingents whose failed cancel or resize may be retried."""
        for cid in self._replacing & self.active.keys():  # a lookup may settle it (failed) with no venue update
            self._dirty[cid] = None
        self._replacing.clear()
        now = self._engine.clock.monotonic()
        for key, (at, _) in list(self._stuck.items()):
            order = self._order(key[0])
            cid = self._by_order.get(key[0])
            if order is None or order.is_final or cid is None:
                del self._stuck[key]
            elif now >= at:
                self._dirty[cid] = None

    def load(self, state: dict[str, str]) -> None:
        """At start, before any venue is restored: the contingents still active and their links."""
        for key, value in state.items():
            if not key.startswith(STATE_PREFIX):
                continue
            c = Contingent.model_validate_json(value)
            if c.id[1:].isdigit():
                self._last_id = max(self._last_id, int(c.id[1:]))
            if c.done is None:
                self._add(c)
        if not self.active:
            return
        # Orders placed for a leg just before a stop, whose link was not journaled yet.
        for order in sorted(self._engine._orders.values(), key=lambda o: (o.created_at, o.id)):
            hit = self._by_tag.get(order.tag or "")
            if hit is not None and order.id not in self._by_order:
                self._link(self.active[hit[0]], hit[1], order)

    async def catch_up(self) -> None:
        """At the end of start: act on whatever the orders did while the engine was down."""
        if not self.active:
            return
        if self._engine.trading_state is TradingState.HALTED:
            # no halt runs now to cancel the legs at the venue: cancel them here
            legs = [o for c in self.active.values() for o in self._all(c, c.legs) if o.status.is_live and o.id not in self._held]
            await self.stop("trading was HALTED when the engine stopped")
            for order in legs:
                try:
                    await self._engine.cancel_order(order.id)
                except EngineError as exc:
                    self._engine._notice("error", f"{order.tag}: {order.id} not cancelled under HALTED: {exc}")
            return
        self._dirty.update(dict.fromkeys(self.active))
        async with self._exclusive():
            pass

    async def stop(self, reason: str) -> None:
        """The halt: cancel what is held here and end every contingent, so no leg is placed
        again. The venue orders are cancelled by the halt itself, right after this."""
        for oid in list(self._held):
            order = self._engine._orders.get(oid)
            if order is not None and order.status.is_live:
                await self._end_held(order, S.CANCELLED, f"cancelled by the halt ({reason})")
        for c in list(self.active.values()):
            await self._finish(c, f"stopped: {reason}")

    async def cancel_held(self, order: Order) -> Order:
        """Cancel an order held here (a trailing stop). Once triggered it is working at the
        venue as its exit order: cancel that one instead."""
        if order.status is S.OPEN and order.id in self._held:
            await self._end_held(order, S.CANCELLED, "cancelled by the trader")
            await self._kick()
        return order.model_copy()

    async def cancel_all_held(self, symbol: str | None = None) -> list[Order]:
        orders = [self._engine._orders[oid] for oid in list(self._held)]
        return [await self.cancel_held(o) for o in orders if symbol is None or o.symbol == symbol]

    # -- placing --------------------------------------------------------------------------------

    async def place_bracket_order(
        self, symbol: str, side: str | Side, amount: Decimal, entry: Decimal | None = None,
        stop_loss: Decimal | None = None, take_profit: Decimal | None = None, *,
        leverage: Decimal = Decimal(1), account: str | None = None,
    ) -> Contingent:
        """An entry (market, or a limit at ``entry``) whose fills are protected by reduce-only
        stop-loss and take-profit orders sized to what has filled. A fill of either exit leg
        shrinks the other (and cancels the entry's unfilled rest: the bracket is closing)."""
        e = self._engine
        e._journal()
        side = _side(side)
        sl = _number("stop_loss", stop_loss, optional=True)
        tp = _number("take_profit", take_profit, optional=True)
        if sl is None and tp is None:
            raise EngineError("a bracket needs a stop_loss, a take_profit or both")
        price = _number("entry", entry, optional=True)
        request = OrderRequest(symbol=symbol, side=side, type="limit" if price is not None else "market",
                               amount=amount, price=price, leverage=leverage, account=account)
        acct = self._account(request.account)
        problems = self._price_problems(acct, request.symbol, {"stop_loss": sl, "take_profit": tp})
        ref = price or acct.prices.get(request.symbol)
        if ref is not None:
            problems += protective_problems(side, ref, sl, tp)
        problems += e.check_order(request)
        if problems:
            raise EngineError("bracket refused: " + "; ".join(problems))
        cid = self._new_id()
        legs = {"entry": Leg(tag=f"bracket {cid} entry", side=side, type=request.type, price=price,
                             reduce_only=False, leverage=request.leverage)}
        if sl is not None:
            legs["stop_loss"] = Leg(tag=f"bracket {cid} stop-loss", side=side.opposite, type=OrderType.STOP, stop_price=sl)
        if tp is not None:
            legs["take_profit"] = Leg(tag=f"bracket {cid} take-profit", side=side.opposite, type=OrderType.TAKE_PROFIT,
                                      stop_price=tp)
        # Native only for a market entry: the exchange (OKX) attaches the exits once the entry has
        # filled completely, so a resting entry's partial fills would sit unprotected while it
        # works. A market entry fills at once (what it leaves part-filled goes emulated).
        native = "bracket" in native_support(acct.venue) and request.type is OrderType.MARKET
        if native:
            legs["entry"].client_order_id = f"{cid}e{uuid.uuid4().hex[:20]}"
            prices = " / ".join(f"{n} {p}" for n, p in (("stop-loss", sl), ("take-profit", tp)) if p is not None)
            legs["exits"] = Leg(tag=f"bracket {cid} exits: {prices} (one {acct.venue.name} algo order)",
                                side=side.opposite, type=OrderType.STOP if sl is not None else OrderType.TAKE_PROFIT,
                                stop_price=sl if sl is not None else tp,
                                client_order_id=f"{NATIVE_PREFIX}{cid}x{uuid.uuid4().hex[:16]}")
        c = Contingent(id=cid, kind="bracket", account=acct.name, symbol=request.symbol, amount=request.amount, legs=legs,
                       native=native)
        async with self._exclusive():
            await self._write(c, "bracket_created", {"entry": str(price) if price else "market", "stop_loss": str(sl),
                                                     "take_profit": str(tp), "amount": str(c.amount),
                                                     "native": acct.venue.name if native else None})
            self._add(c)
            order = await self._place_leg(c, "entry", c.amount)
            if native and order is not None and order.status in (S.REJECTED, S.FAILED):
                await self._go_emulated(c, f"{acct.venue.name} refused the entry with its exits attached ({order.error})")
                await self._place_leg(c, "entry", c.amount)
        return self.get(cid)  # type: ignore[return-value]

    async def place_oco_order(
        self, symbol: str, side: str | Side, amount: Decimal, price: Decimal, stop_price: Decimal, *,
        stop_limit_price: Decimal | None = None, reduce_only: bool = True, account: str | None = None,
    ) -> Contingent:
        """A limit at ``price`` and a stop at ``stop_price`` (a stop-limit with ``stop_limit_price``)
        for one quantity: when either fills the other is cancelled (shrunk on a partial fill)."""
        side = _side(side)
        limit = OrderRequest(symbol=symbol, side=side, type="limit", amount=amount, price=price,
                             reduce_only=reduce_only, account=account)
        stop = OrderRequest(symbol=symbol, side=side, type="stop_limit" if stop_limit_price is not None else "stop",
                            amount=amount, stop_price=stop_price, price=stop_limit_price, reduce_only=reduce_only,
                            account=account)
        return await self._place_oco({"limit": limit, "stop": stop})

    async def place_oco(self, first: OrderRequest, second: OrderRequest) -> Contingent:
        """Any two orders as one-cancels-the-other (same symbol, account and amount)."""
        return await self._place_oco({"first": first, "second": second})

    async def _place_oco(self, requests: dict[str, OrderRequest]) -> Contingent:
        e = self._engine
        e._journal()
        first, second = requests.values()
        problems = []
        if (first.symbol, first.account) != (second.symbol, second.account):
            problems.append("both orders of an OCO must be on the same symbol and account")
        if first.amount != second.amount:
            problems.append(f"both orders of an OCO need the same amount, got {first.amount} and {second.amount}")
        for role, request in requests.items():
            problems += [f"{role} order: {r}" for r in e.check_order(request)]
        if problems:
            raise EngineError("OCO refused: " + "; ".join(problems))
        acct = self._account(first.account)
        cid = self._new_id()
        legs = {
            role: Leg(tag=f"oco {cid} {role}", side=r.side, type=r.type, price=r.price, stop_price=r.stop_price,
                      time_in_force=r.time_in_force, reduce_only=r.reduce_only, leverage=r.leverage)
            for role, r in requests.items()
        }
        c = Contingent(id=cid, kind="oco", account=acct.name, symbol=first.symbol, amount=first.amount, legs=legs)
        async with self._exclusive():
            # the link is durable before either order is sent: a restart finds both by their tags
            await self._write(c, "oco_linked", {role: f"{r.type.value} {r.side.value} {r.amount} @ {r.price or r.stop_price}"
                                                for role, r in requests.items()})
            self._add(c)
            self._dirty[cid] = None  # the step places the legs, one at a time
        return self.get(cid)  # type: ignore[return-value]

    async def place_trailing_stop(
        self, symbol: str, side: str | Side, amount: Decimal, *, trail_amount: Decimal | None = None,
        trail_percent: Decimal | None = None, activation_price: Decimal | None = None, account: str | None = None,
    ) -> Order:
        """A stop that follows the best price since activation (at once without
        ``activation_price``) by ``trail_amount`` or ``trail_percent`` and closes with a
        reduce-only market order when the price comes back to it. Held here: the returned
        order is emulated (open in the engine, unknown to the venue)."""
        e = self._engine
        e._journal()
        side = _side(side)
        trail = _number("trail_amount", trail_amount, optional=True)
        pct = _number("trail_percent", trail_percent, optional=True)
        activation = _number("activation_price", activation_price, optional=True)
        problems = []
        if (trail is None) == (pct is None):
            problems.append("give exactly one of trail_amount and trail_percent")
        if pct is not None and pct >= 100:
            problems.append(f"trail_percent must be below 100, got {pct}")
        exit_request = OrderRequest(symbol=symbol, side=side, type="market", amount=amount, reduce_only=True,
                                    account=account)
        acct = self._account(exit_request.account)
        last = acct.prices.get(exit_request.symbol)
        problems += e.check_order(exit_request)  # what its exit order will meet: a position to reduce, the state
        if problems:
            raise EngineError("trailing stop refused: " + "; ".join(problems))
        if "trailing" in native_support(acct.venue):
            native = await self._place_native_trailing(exit_request, trail, pct, activation)
            if native is not None:
                return native
        cid = self._new_id()
        e._seq += 1  # an engine order id: the trailing stop is listed with every other order
        oid = f"td{e._token}{e._seq:06d}"
        now = e.clock.now()
        tag = f"trailing {cid} stop"
        order = Order(id=oid, client_order_id=oid, account=acct.name, symbol=exit_request.symbol, side=side,
                      type=OrderType.STOP, amount=exit_request.amount, reduce_only=True, tag=tag, status=S.OPEN,
                      emulated=True, created_at=now, updated_at=now, submitted_at=now, acked_at=now, submit_mark=last)
        c = Contingent(
            id=cid, kind="trailing", account=acct.name, symbol=order.symbol, amount=order.amount,
            legs={"stop": Leg(tag=tag, side=side, type=OrderType.STOP, orders=[oid]),
                  "exit": Leg(tag=f"trailing {cid} exit", side=side, type=OrderType.MARKET)},
            trail_amount=trail, trail_percent=pct, activation_price=activation,
        )
        if last is not None and self._activates(c, side, last):
            c.best = last
            order.stop_price = self._trigger(c, side)
        async with self._exclusive():
            e._track(order)
            self._add(c)
            await self._write(c, "trailing_created", {"trail": f"{pct}%" if pct is not None else str(trail),
                                                      "activation_price": str(activation)}, order=order)
        return order.model_copy()

    async def _place_native_trailing(self, request: OrderRequest, trail: Decimal | None, pct: Decimal | None,
                                     activation: Decimal | None) -> Order | None:
        """The trailing stop kept by the exchange; None (and a notice) when it refuses it."""
        e = self._engine
        acct = self._account(request.account)
        venue = acct.venue
        ref = acct.prices.get(request.symbol)
        if ref is None and hasattr(venue, "fetch_quote"):
            quote = await venue.fetch_quote(request.symbol)
            ref = quote.last if quote is not None else None
        cid = self._new_id()
        tag = f"trailing {cid} stop ({venue.name} keeps it)"
        client_id = f"{NATIVE_PREFIX}{cid}t{uuid.uuid4().hex[:16]}"
        c = Contingent(id=cid, kind="trailing", account=acct.name, symbol=request.symbol, amount=request.amount,
                       legs={"stop": Leg(tag=tag, side=request.side, type=OrderType.STOP, client_order_id=client_id)},
                       trail_amount=trail, trail_percent=pct, activation_price=activation, native=True)
        # The stop shown is where it starts; the exchange moves it from there.
        c.best = activation if activation is not None and (ref is None or not self._activates(c, request.side, ref)) else ref
        if c.best is None:
            return None  # no price to start from: the emulated stop waits for one
        stop = self._trigger(c, request.side)
        c.best = None
        async with self._exclusive():
            await self._write(c, "trailing_created", {"trail": f"{pct}%" if pct is not None else str(trail),
                                                      "activation_price": str(activation), "native": venue.name})
            self._add(c)
            venue.plan_native(client_id, NativeTrail(percent=pct, amount=trail, activation=activation))  # type: ignore[attr-defined]
            order = await e.place_order(request.model_copy(update={
                "type": OrderType.STOP, "stop_price": stop, "tag": tag, "client_order_id": client_id}))
            self._link(c, "stop", order)
            await self._write(c, "leg_placed", {"role": "stop", "order_id": order.id, "status": order.status.value})
            if order.status in (S.REJECTED, S.FAILED):
                await self._finish(c, f"{venue.name} refused it natively: {order.error}")
                e._notice("warning", f"trailing stop {cid}: {venue.name} refused it natively ({order.error}); "
                                     f"emulated in the core instead")
                return None
        return e._orders[order.id].model_copy()

    async def update_protection(self, role: str, symbol: str, price: Decimal, account: str | None = None) -> list[Order]:
        """Move the stop-loss (``role`` "stop_loss") or take-profit of an open position to
        ``price``: each protective order is replaced (the new one first, so protection never
        lapses), or one is placed for the whole position when there is none. Without a
        position, a bracket whose entry has not filled yet gets the new price for its leg."""
        e = self._engine
        e._journal()
        label = role.replace("_", "-")
        new_price = _number("price", price)
        assert new_price is not None
        acct = self._account(account)
        symbol = symbol.strip().upper()
        market = acct.venue.markets.get(symbol)
        if market is None:
            raise EngineError(f"unknown symbol {symbol} on {acct.name}")
        if new_price % market.tick_size:
            raise EngineError(f"{label} price {new_price} is finer than the tick size {market.tick_size}")
        if e.trading_state is TradingState.HALTED:
            raise EngineError(f"trading is HALTED: the {label} cannot be changed")
        for c in self.active.values():
            if c.native and c.kind == "bracket" and (c.account, c.symbol) == (acct.name, symbol):
                raise EngineError(f"the {label} of bracket {c.id} is kept by {acct.venue.name} in one order with its "
                                  f"other exit: cancel that order and place new protection to change it")
        async with self._exclusive():
            position = acct.ledger.signed_size(symbol)
            if position == 0:
                return await self._update_planned(role, acct.name, symbol, new_price)
            exit_side = Side.SELL if position > 0 else Side.BUY
            last = acct.prices.get(symbol)
            below = (role == "stop_loss") == (position > 0)  # a long's stop sits below the price, its target above
            if last is not None and (new_price >= last if below else new_price <= last):
                raise EngineError(f"{label} {new_price} must be {'below' if below else 'above'} the last price {last} "
                                  f"for a {'long' if position > 0 else 'short'} {symbol} position")
            kinds = (OrderType.STOP, OrderType.STOP_LIMIT) if role == "stop_loss" else (OrderType.TAKE_PROFIT,)
            olds = [o for o in e._live.values() if o.account == acct.name and o.symbol == symbol and o.reduce_only
                    and o.side is exit_side and o.type in kinds and o.id not in self._held and o.status not in _WAITING]
            if not olds:
                order = await e.place_order(OrderRequest(
                    symbol=symbol, side=exit_side, type=kinds[0], amount=abs(position), stop_price=new_price,
                    reduce_only=True, tag=f"{label} for the {symbol} position", account=acct.name))
                if order.status in (S.REJECTED, S.FAILED):
                    raise EngineError(f"{label} not placed: {order.error}")
                return [order]
            return [await self._replace_protection(old, new_price, label) for old in olds]

    # -- internals: bookkeeping -------------------------------------------------------------------

    def _account(self, name: str | None) -> _Account:
        e = self._engine
        acct = e._accounts.get(name or e.account)
        if acct is None:
            raise EngineError(f"unknown account {name!r} (accounts: {', '.join(e._accounts)})")
        return acct

    def _price_problems(self, acct: _Account, symbol: str, prices: dict[str, Decimal | None]) -> list[str]:
        market = acct.venue.markets.get(symbol)
        if market is None:
            return []  # the entry's own check names the unknown symbol
        return [f"{name} {p} is finer than the tick size {market.tick_size}"
                for name, p in prices.items() if p is not None and p % market.tick_size]

    def _new_id(self) -> str:
        self._last_id += 1
        return f"c{self._last_id}"

    def _add(self, c: Contingent) -> None:
        self.active[c.id] = c
        for role, leg in c.legs.items():
            self._by_tag[leg.tag] = (c.id, role)
            for oid in leg.orders:
                self._by_order[oid] = c.id
        for oid in c.legs["stop"].orders if c.kind == "trailing" and not c.native else ():
            if (order := self._order(oid)) is not None and order.status.is_live:
                self._held.add(oid)
        self._engine.register_algorithm(self)  # the halt must reach it (a halt unregisters it again)

    def _link(self, c: Contingent, role: str, order: Order) -> None:
        leg = c.legs[role]
        if order.id not in leg.orders:
            working = self._current(c, role)
            if order.status in (S.REJECTED, S.FAILED) and working is not None and working.status.is_live:
                leg.orders.insert(len(leg.orders) - 1, order.id)  # a refused replacement: the old order keeps working
            else:
                leg.orders.append(order.id)
        if c.done is None:
            self._by_order[order.id] = c.id

    def _order(self, oid: str) -> Order | None:
        return self._engine._orders.get(oid)

    def _current(self, c: Contingent, role: str) -> Order | None:
        leg = c.legs.get(role)
        return self._order(leg.orders[-1]) if leg and leg.orders else None

    def _all(self, c: Contingent, roles: Iterable[str]) -> list[Order]:
        return [o for r in roles if r in c.legs for oid in c.legs[r].orders if (o := self._order(oid)) is not None]

    async def _write(self, c: Contingent, kind: str, data: dict[str, Any] | None = None, order: Order | None = None) -> None:
        """Journal a link change with the contingent's projection (one transaction); an order
        held here is written with it and published once durable."""
        e = self._engine
        payload = {"contingent": c.id, "type": c.kind, **(data or {})}
        await e._journal().write(kind, ts=e._ts(), account=c.account, order=order, data=payload,
                                 state={STATE_PREFIX + c.id: c.model_dump_json()})
        if order is not None:
            e._publish(OrderUpdated(order.model_copy(), kind))

    async def _finish(self, c: Contingent, reason: str) -> None:
        if c.done is not None:
            return
        c.done = reason
        await self._write(c, "contingent_done", {"reason": reason})
        self.active.pop(c.id, None)
        self._finished[c.id] = c
        self._dirty.pop(c.id, None)
        for leg in c.legs.values():
            self._by_tag.pop(leg.tag, None)
            for oid in leg.orders:
                self._by_order.pop(oid, None)
        if not self.active:
            self._engine.unregister_algorithm(self)

    @asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        """One task acts at a time; it steps whatever was queued meanwhile before it lets go."""
        async with self._lock:
            self._busy = True
            try:
                yield
                await self._drain()
            finally:
                self._busy = False

    async def _kick(self) -> None:
        if (self._dirty or self._prices) and not self._busy:
            async with self._exclusive():
                pass

    async def _drain(self) -> None:
        steps: dict[str, int] = {}
        while self._dirty or self._prices:
            if self._prices:
                account, prices = self._prices.popitem()
                await self._follow(account, prices)
                continue
            cid = next(iter(self._dirty))
            del self._dirty[cid]
            c = self.active.get(cid)
            if c is None:
                continue
            steps[cid] = steps.get(cid, 0) + 1
            if steps[cid] > _MAX_STEPS:
                self._engine._notice("error", f"{c.kind} {c.id} keeps changing its orders; left as it is")
                continue
            try:
                acted = await self._step(c)
            except TradedeskError as exc:
                acted = False
                await self._write(c, "contingent_error", {"error": str(exc)})  # the audit trail keeps why it stalled
                self._engine._notice("error", f"{c.kind} {c.id}: {exc}")
            if acted:
                self._dirty[cid] = None

    # -- internals: steps -------------------------------------------------------------------------

    async def _step(self, c: Contingent) -> bool:
        """Bring one contingent's orders in line with what they should be; True if it acted."""
        if self._engine.trading_state is TradingState.HALTED:
            return False  # the halt ends every contingent; nothing new until then
        if c.kind == "bracket":
            return await (self._step_native_bracket(c) if c.native else self._step_bracket(c))
        if c.kind == "oco":
            return await self._step_oco(c)
        return await self._step_trailing(c)

    async def _step_bracket(self, c: Contingent) -> bool:
        entry = self._current(c, "entry")
        if entry is None:
            await self._finish(c, "the entry was never sent")
            return False
        if entry.status in (S.NEW, S.SUBMITTING, S.UNRESOLVED):
            return False
        exited = sum((o.filled for o in self._all(c, _EXIT_ROLES)), ZERO)
        await self._report_overfill(c, exited - entry.filled)
        open_qty = max(entry.filled - exited, ZERO)
        if exited > 0 and self._cancellable(entry) and await self._cancel(c, entry):
            return True  # an exit leg has traded: the position is being closed, so no more entry fills
        for role in _EXIT_ROLES:
            if role in c.legs and await self._keep_sized(c, role, open_qty):
                return True
        if entry.is_final and all(self._settled(c, r) for r in _EXIT_ROLES):
            if entry.filled == 0:
                reason = f"entry {entry.status.value} with no fill: legs dropped"
            elif open_qty == 0:
                reason = "position closed by its exit legs"
            else:
                reason = f"{open_qty} {c.symbol} left without protection"
                self._engine._notice("warning", f"bracket {c.id}: {reason}")
            await self._finish(c, reason)
        return False

    async def _step_native_bracket(self, c: Contingent) -> bool:
        """The exchange keeps the exits: open their order once the entry has filled, end with it."""
        entry = self._current(c, "entry")
        if entry is None:
            await self._finish(c, "the entry was never sent")
            return False
        if entry.status in (S.NEW, S.SUBMITTING, S.UNRESOLVED):
            return False
        exits = self._current(c, "exits")
        if exits is None:
            if not entry.is_final:
                return False  # the exchange attaches the exits once the entry has filled completely
            if entry.filled == 0:
                await self._finish(c, f"entry {entry.status.value} with no fill: legs dropped")
                return False
            if entry.filled >= entry.amount:
                await self._open_native_exits(c, entry)
            else:
                venue = self._engine._accounts[c.account].venue.name
                await self._go_emulated(c, f"entry {entry.id} {entry.status.value} after filling {entry.filled} of "
                                           f"{entry.amount}: {venue} attaches exits to a fully filled order only")
            return True
        if not exits.is_final:
            return False
        if exits.status is S.FILLED:
            reason = f"position closed at the exchange by its exits {exits.id} at {exits.average_price}"
        else:
            reason = f"exits {exits.id} {exits.status.value}: {entry.filled - exits.filled} {c.symbol} left without protection"
            self._engine._notice("warning", f"bracket {c.id}: {reason}")
        await self._finish(c, reason)
        return False

    async def _open_native_exits(self, c: Contingent, entry: Order) -> None:
        """The order the exchange created for the exits when the entry filled: an engine order
        under the client id journaled with the bracket, followed by the venue like any other."""
        e = self._engine
        leg = c.legs["exits"]
        assert leg.client_order_id is not None
        adopted = e._by_client.get((c.account, leg.client_order_id))
        if adopted is not None:
            # the start-up reconcile found it at the exchange first and adopted it as external: claim it
            for name, value in (("tag", leg.tag), ("type", leg.type), ("stop_price", leg.stop_price),
                                ("reduce_only", True), ("revision", adopted.revision + 1)):
                setattr(adopted, name, value)
            self._link(c, "exits", adopted)
            await self._write(c, "leg_placed", {"role": "exits", "order_id": adopted.id, "native": True,
                                                "claimed": True}, order=adopted)
            return
        e._seq += 1
        oid = f"td{e._token}{e._seq:06d}"
        now = e.clock.now()
        order = Order(id=oid, client_order_id=leg.client_order_id, account=c.account, symbol=c.symbol, side=leg.side,
                      type=leg.type, amount=entry.filled, stop_price=leg.stop_price, reduce_only=True, tag=leg.tag,
                      status=S.OPEN, created_at=now, updated_at=now, submitted_at=now, acked_at=now)
        e._track(order)
        self._link(c, "exits", order)
        e._accounts[c.account].venue.follow(order)  # type: ignore[attr-defined]
        await self._write(c, "leg_placed", {"role": "exits", "order_id": oid, "amount": str(clean(order.amount)),
                                            "native": True}, order=order)

    async def _go_emulated(self, c: Contingent, why: str) -> None:
        """The exchange will not keep this bracket's exits: the core places them from now on."""
        c.native = False
        await self._write(c, "native_dropped", {"reason": why})
        self._engine._notice("warning", f"bracket {c.id}: {why}; its exits are emulated in the core instead")
        self._dirty[c.id] = None

    async def _step_oco(self, c: Contingent) -> bool:
        orders = self._all(c, c.legs)
        filled = sum((o.filled for o in orders), ZERO)
        await self._report_overfill(c, filled - c.amount)
        # one order that ended without trading (cancelled, expired, refused) cancels the other
        ended = next((o for r in c.legs if (o := self._current(c, r)) is not None and o.is_final and o.filled == 0
                      and o.id not in c.cancelled), None)
        target = ZERO if ended is not None else max(c.amount - filled, ZERO)
        for role in c.legs:
            if await self._keep_sized(c, role, target):
                return True
        if all(self._settled(c, r) for r in c.legs):
            await self._finish(c, f"filled {clean(filled)} of {clean(c.amount)}" if filled
                               else f"{ended.id} {ended.status.value}: the other was cancelled" if ended else "cancelled")
        return False

    async def _step_trailing(self, c: Contingent) -> bool:
        e = self._engine
        held = self._current(c, "stop")
        if c.native:  # the exchange trails and fires it: the contingent ends with the order
            if held is None or held.is_final:
                await self._finish(c, f"trailing stop {held.status.value if held else 'missing'}"
                                      + (f" at {held.average_price}" if held and held.filled else ""))
            return False
        if held is None or held.status.is_final:
            await self._finish(c, f"trailing stop {held.status.value if held else 'missing'}")
            return False
        if held.status is not S.TRIGGERED:
            return False  # waiting for the price
        child = self._current(c, "exit")
        if child is None:
            position = e._accounts[c.account].ledger.signed_size(c.symbol)
            closes = position != 0 and (position > 0) == (held.side is Side.SELL)
            size = min(held.remaining, abs(position)) if closes else ZERO
            if size <= 0:
                await self._end_held(held, S.CANCELLED, f"triggered at {held.stop_price}: no {c.symbol} position left to close")
                return True
            await self._place_leg(c, "exit", size)
            return True
        if not child.is_final:
            return False
        # The exit's fills are booked on the exit order; the held one mirrors them for display.
        held.filled = child.filled
        held.average_price = child.average_price
        if child.filled >= held.amount:
            await self._end_held(held, S.FILLED, None)
        elif child.filled > 0:
            await self._end_held(held, S.CANCELLED, f"exit order {child.id} filled {child.filled} of {held.amount}")
        else:
            await self._end_held(held, S.REJECTED, f"exit order {child.id} {child.status.value}: {child.error}")
        return True

    def _settled(self, c: Contingent, role: str) -> bool:
        leg = c.legs.get(role)
        return leg is None or all((o := self._order(oid)) is None or o.is_final for oid in leg.orders)

    def _cancellable(self, order: Order) -> bool:
        return order.status.is_live and order.status not in _WAITING and order.id not in self._held

    async def _keep_sized(self, c: Contingent, role: str, target: Decimal) -> bool:
        """Make the leg's working order have ``target`` left to fill: place, resize or cancel it."""
        leg = c.legs[role]
        order = self._current(c, role)
        older = [o for oid in leg.orders[:-1] if (o := self._order(oid)) is not None and o.status.is_live]
        if order is not None and older:  # replaced (cancel-replace): the old order goes once the new one works
            if order.status in (S.REJECTED, S.FAILED):
                return await self._restore(c, role, order, older[-1], target)
            if order.status in _UNCONFIRMED:
                self._replacing.add(c.id)
                return False  # the venue may not have the replacement: the old one keeps protecting meanwhile
            for old in older:
                if self._cancellable(old):
                    return await self._cancel(c, old)
        if leg.dropped is not None:
            return False
        if order is None:
            if target > 0:
                await self._place_leg(c, role, target)
                return True
            return False
        if order.status in _WAITING:
            return False
        if order.id in c.cancelled and not order.is_final:
            # its cancel did not take (a restart found it working): a later end is not this manager's doing
            c.cancelled.remove(order.id)
            await self._write(c, "leg_cancel_failed", {"order_id": order.id})
        if order.is_final:
            if target > 0 and (order.status is S.FILLED or order.id in c.cancelled):
                # filled or cancelled here, and the entry filled more since: the leg covers that too
                await self._place_leg(c, role, target, triggered=order.status is S.FILLED and role == "stop_loss")
                return True
            if target > 0:
                # cancelled by the trader or the venue, or refused: keep the rest, never re-place it
                leg.dropped = f"{order.id} {order.status.value}" + (f": {order.error}" if order.error else "")
                await self._write(c, "leg_dropped", {"role": role, "reason": leg.dropped})
                self._engine._notice("warning", f"{c.kind} {c.id}: {role.replace('_', '-')} {leg.dropped}; "
                                                f"{target} {c.symbol} is without it")
                return True
            return False
        if target <= 0:
            return await self._cancel(c, order)
        if order.remaining != target:
            return await self._resize(c, role, order, target)
        return False

    async def _place_leg(self, c: Contingent, role: str, amount: Decimal, *, triggered: bool = False) -> Order | None:
        """Send one order for a leg. ``triggered``: the leg's level was reached (its stop filled),
        so the rest goes as the exit the trigger sends: at market."""
        leg = c.legs[role]
        if c.done is not None or self._engine.trading_state is TradingState.HALTED:
            return None
        kind, stop_price = leg.type, leg.stop_price
        if triggered:
            # a venue refuses a trigger order already past its level (a gap), and the exit the
            # trigger sends is what the leg is for
            kind, stop_price = OrderType.MARKET, None
            self._engine._notice("warning", f"{c.kind} {c.id}: {role.replace('_', '-')} {leg.stop_price} was reached: "
                                            f"closing the {clean(amount)} {c.symbol} filled since at market")
        client_id = None
        if c.native and role == "entry":  # sent with its exits attached
            client_id = leg.client_order_id
            sl, tp, exits = c.legs.get("stop_loss"), c.legs.get("take_profit"), c.legs["exits"]
            self._engine._accounts[c.account].venue.plan_native(client_id, NativeExits(  # type: ignore[attr-defined]
                client_order_id=exits.client_order_id or "", stop_loss=sl.stop_price if sl else None,
                take_profit=tp.stop_price if tp else None))
        order = await self._engine.place_order(OrderRequest(
            symbol=c.symbol, side=leg.side, type=kind, amount=amount, price=leg.price, stop_price=stop_price,
            time_in_force=leg.time_in_force, reduce_only=leg.reduce_only, leverage=leg.leverage, tag=leg.tag,
            client_order_id=client_id, account=c.account))
        self._link(c, role, order)
        await self._write(c, "leg_placed", {"role": role, "order_id": order.id, "amount": str(clean(amount)),
                                            "status": order.status.value})
        if order.status in (S.REJECTED, S.FAILED):
            self._engine._notice("error", f"{c.kind} {c.id}: {role.replace('_', '-')} order refused: {order.error}")
        self._dirty[c.id] = None  # a refusal is journaled without a venue update: look again
        return order

    def _blocked(self, key: tuple[str, str]) -> bool:
        retry = self._stuck.get(key)
        return retry is not None and self._engine.clock.monotonic() < retry[0]

    def _failed(self, key: tuple[str, str]) -> None:
        """The engine has said why; retried on a later tick, each wait twice the last."""
        wait = self._stuck.get(key, (0.0, _RETRY_FIRST))[1]
        self._stuck[key] = (self._engine.clock.monotonic() + wait, min(wait * 2, _RETRY_MAX))

    async def _resize(self, c: Contingent, role: str, order: Order, target: Decimal) -> bool:
        key = (order.id, f"resize {target}")
        if self._blocked(key):
            return False
        e = self._engine
        if e._accounts[order.account].venue.can_amend:
            try:
                await e.modify_order(order.id, amount=order.filled + target)
            except EngineError as exc:
                self._failed(key)
                e._notice("error", f"{c.kind} {c.id}: {role.replace('_', '-')} {order.id} not resized to {target}: {exc}")
                return False
            self._stuck.pop(key, None)
            return True
        if not c.legs[role].reduce_only:
            # a plain order is not capped by the position (both could fill): the old one goes
            # first, the next step places the rest
            return await self._cancel(c, order)
        # No amend: the replacement first (reduce-only, so the venue caps the overlap), then the
        # old one goes as a replaced order once the new one is working.
        placed = await self._place_leg(c, role, target)
        if placed is None or placed.status in (S.REJECTED, S.FAILED):
            self._failed(key)
        return True

    async def _restore(self, c: Contingent, role: str, refused: Order, back: Order, target: Decimal) -> bool:
        """A replacement that ended refused or failed: the older order, still live, is the leg's
        working order again (and the resize waits before it is tried again)."""
        leg = c.legs[role]
        leg.orders.remove(back.id)
        leg.orders.append(back.id)
        self._failed((back.id, f"resize {target}"))
        await self._write(c, "leg_restored", {"role": role, "order_id": back.id, "refused": refused.id})
        self._engine._notice("error", f"{c.kind} {c.id}: {role.replace('_', '-')} replacement {refused.id} "
                                      f"{refused.status.value}; {back.id} keeps working")
        return True

    async def _cancel(self, c: Contingent, order: Order) -> bool:
        key = (order.id, "cancel")
        if self._blocked(key):
            return False
        e = self._engine
        # write-ahead: the cancel may reach the venue and the process die before its answer
        if order.id not in c.cancelled:
            c.cancelled.append(order.id)
        await self._write(c, "leg_cancelling", {"order_id": order.id})
        try:
            after = await e.cancel_order(order.id)
        except EngineError as exc:
            after = None
            e._notice("error", f"cancel of {order.id} failed: {exc}")
        if after is None or after.status.is_live and after.status is not S.CANCELLING:
            c.cancelled.remove(order.id)  # still working: a later end is not this manager's doing
            await self._write(c, "leg_cancel_failed", {"order_id": order.id})
            self._failed(key)
        else:
            self._stuck.pop(key, None)
        return True

    async def _report_overfill(self, c: Contingent, over: Decimal) -> None:
        """Exits beyond what they protect (both legs filled at once): said loudly, once."""
        if over <= c.overfill:
            return
        c.overfill = over
        position = self._engine._accounts[c.account].ledger.signed_size(c.symbol)
        await self._write(c, "contingent_overfill", {"overfill": str(clean(over)), "position": str(clean(position))})
        self._engine._notice("error", f"{c.kind} {c.id}: its exit orders filled {clean(over)} {c.symbol} more than they "
                                      f"protect ({c.symbol} position now {clean(position)})",
                             {"contingent": c.id, "overfill": over, "position": position})

    async def _update_planned(self, role: str, account: str, symbol: str, price: Decimal) -> list[Order]:
        planned = [c for c in self.active.values() if c.kind == "bracket" and c.account == account
                   and c.symbol == symbol and role in c.legs and not c.legs[role].orders]
        if not planned:
            raise EngineError(f"no open {symbol} position on {account}: there is no {role.replace('_', '-')} to update")
        for c in planned:
            c.legs[role].stop_price = price
            await self._write(c, "leg_updated", {"role": role, "stop_price": str(price)})
        return []

    async def _replace_protection(self, old: Order, price: Decimal, label: str) -> Order:
        e = self._engine
        cid = self._by_order.get(old.id)
        c = self.active.get(cid) if cid else None
        new = await e.place_order(OrderRequest(
            symbol=old.symbol, side=old.side, type=old.type, amount=old.remaining, price=old.price, stop_price=price,
            time_in_force=old.time_in_force, reduce_only=True, leverage=old.leverage, tag=old.tag, account=old.account))
        if new.status in (S.REJECTED, S.FAILED):
            raise EngineError(f"{label} {old.id} not moved (still at {old.stop_price}): {new.error}")
        role = next((r for r, leg in c.legs.items() if old.id in leg.orders), None) if c else None
        if c is not None and role is not None:
            c.legs[role].stop_price = price  # later resizes place at the new price too
            self._link(c, role, new)
            await self._write(c, "leg_placed", {"role": role, "order_id": new.id, "replaces": old.id,
                                                "stop_price": str(price)})
        after = await e.cancel_order(old.id)
        if c is None and after.filled > 0:
            await e.cancel_order(new.id)  # the old one traded while being replaced: it did its job
        return e._orders[new.id].model_copy()

    # -- internals: trailing stops ----------------------------------------------------------------

    def _activates(self, c: Contingent, side: Side, price: Decimal) -> bool:
        act = c.activation_price
        return act is None or (price >= act if side is Side.SELL else price <= act)

    def _trigger(self, c: Contingent, side: Side) -> Decimal:
        """The stop level: the trail behind the best price, snapped to the tick away from it
        (never tighter than asked)."""
        best = c.best
        assert best is not None
        trail = c.trail_amount if c.trail_amount is not None else best * c.trail_percent / 100  # type: ignore[operator]
        tick = self._engine._accounts[c.account].venue.markets[c.symbol].tick_size
        if side is Side.SELL:
            return round_to_step(best - trail, tick, ROUND_FLOOR)
        return round_to_step(best + trail, tick, ROUND_CEILING)

    async def _follow(self, account: str, prices: dict[str, tuple[Decimal, Decimal, Decimal]]) -> None:
        """Prices seen since the last look, as (low, high, last): their order is unknown, so the
        adverse extreme is tested against the stop as it stood, the favourable one moves the best
        price, and only the last (which came after both) is tested against the moved stop."""
        for c in list(self.active.values()):
            if c.kind != "trailing" or c.native or c.account != account or c.symbol not in prices:
                continue
            held = self._current(c, "stop")
            if held is None or held.status is not S.OPEN or self._engine.trading_state is TradingState.HALTED:
                continue
            low, high, last = prices[c.symbol]
            sell = held.side is Side.SELL
            favourable, adverse = (high, low) if sell else (low, high)
            if c.best is not None and self._crossed(held, adverse):
                await self._fire(c, held, adverse)
                continue
            if c.best is None:
                if not self._activates(c, held.side, favourable):
                    continue
                c.best = favourable
            elif favourable > c.best if sell else favourable < c.best:
                c.best = favourable
            else:
                continue
            held.stop_price = self._trigger(c, held.side)
            held.updated_at = self._engine.clock.now()
            held.revision += 1
            await self._write(c, "trailing_moved", {"best": str(c.best), "trigger": str(held.stop_price)}, order=held)
            if self._crossed(held, last):
                await self._fire(c, held, last)

    @staticmethod
    def _crossed(held: Order, price: Decimal) -> bool:
        return price <= held.stop_price if held.side is Side.SELL else price >= held.stop_price  # type: ignore[operator]

    async def _fire(self, c: Contingent, held: Order, price: Decimal) -> None:
        # write-ahead: the trigger is durable before the exit order is sent
        self._engine._set_status(held, S.TRIGGERED)
        await self._write(c, "trailing_triggered", {"trigger": str(held.stop_price), "price": str(price)}, order=held)
        self._dirty[c.id] = None

    async def _end_held(self, order: Order, status: OrderStatus, error: str | None) -> None:
        self._engine._set_status(order, status, error)
        self._held.discard(order.id)
        cid = self._by_order.get(order.id)
        c = self.active.get(cid) if cid else None
        kind = _FINAL_KIND[status]
        if c is not None:
            await self._write(c, kind, {"reason": error or status.value}, order=order)
            self._dirty[c.id] = None
        else:
            e = self._engine
            await e._journal().write(kind, ts=e._ts(), order=order)
            e._publish(OrderUpdated(order.model_copy(), kind))
