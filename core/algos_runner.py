"""What every execution algorithm shares: its asyncio task on the engine clock, its children
(placed through the engine's public ``place_order`` / ``cancel_order``, so they pass the same
risk checks as any order), the journal, and the ways it ends.

Ending: ``pause`` and ``cancel`` wait for an engine call in flight to finish (a task is never
cancelled half-way through placing an order), then cancel the open children. ``stop`` is the
halt's: it never waits, so no child starts after it returns, and the halt cancels the rest.

A cancel can fail (the venue is down, the child is still unconfirmed): that child keeps working,
so every algorithm sizes new children from ``unplaced()`` and places none while one it tried to
cancel is still live; the parent never has more working than it has left to fill. Whatever goes
wrong inside the task ends the parent FAILED with the reason journaled, never a silent dead task.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from core.algos_model import AlgoStatus, AlgoUpdated, ParentOrder
from core.errors import EngineError, TradedeskError
from core.models import ZERO, Market, Order, OrderRequest, OrderStatus, OrderType, Side, TimeInForce, TradingState
from core.numbers import clean

if TYPE_CHECKING:
    from core.engine import Engine

_AVG_PLACES = Decimal("1e-10")
_FOREIGN_ENDS = 3  # children ended unfilled by someone else in a row before the algorithm gives up


class ChildRefused(Exception):
    """A child was refused (risk check or venue): the algorithm fails with the reason."""


class _Interrupted(Exception):
    """The algorithm was paused, cancelled, stopped or shut down while it worked."""


class AlgoRunner:
    """One algorithm. Subclasses implement ``run``: it returns None when everything filled,
    or why it ended short."""

    def __init__(self, engine: Engine, parent: ParentOrder, on_launch: Any = None) -> None:
        self.engine = engine
        self.parent = parent
        self.name = f"{parent.kind.value} {parent.id}"  # engine.Algorithm protocol
        self._on_launch = on_launch
        self._children: dict[str, Order] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._busy = False  # inside an engine call: let it finish rather than cancel it
        self._closing = False
        self._ours: set[str] = set()  # children this algorithm cancelled itself
        self._foreign_ends = 0

    # -- subclass API ---------------------------------------------------------------------------

    async def run(self) -> str | None:
        raise NotImplementedError

    @property
    def market(self) -> Market:
        markets = self.engine.markets(self.parent.account)
        if self.parent.symbol not in markets:
            raise EngineError(f"{self.parent.symbol} is not listed on account {self.parent.account}")
        return markets[self.parent.symbol]

    def now(self) -> datetime:
        return self.engine.clock.now()

    def live(self) -> list[Order]:
        return [c for c in self._children.values() if c.status.is_live]

    def children(self) -> list[Order]:
        return list(self._children.values())

    def unplaced(self) -> Decimal:
        """What is left to fill minus what live children already work: the most a new child may take."""
        return self.parent.remaining - sum((c.remaining for c in self.live()), ZERO)

    def check(self) -> None:
        """Raise if the algorithm must not go on (called around every engine call)."""
        if self._closing:
            raise _Interrupted
        if self._foreign_ends >= _FOREIGN_ENDS:
            raise ChildRefused(f"{self._foreign_ends} children in a row ended unfilled outside the algorithm "
                               "(cancelled or expired at the venue or by hand)")

    async def place_child(self, kind: OrderType, amount: Decimal, price: Decimal | None = None,
                          tif: TimeInForce = TimeInForce.GTC) -> Order:
        self.check()
        p = self.parent
        request = OrderRequest(symbol=p.symbol, side=p.side, type=kind, amount=amount, price=price, time_in_force=tif,
                               tag=p.tag, account=p.account)
        self._busy = True
        try:
            order = await self.engine.place_order(request)
        finally:
            self._busy = False
        self._record(order)
        await self.journal("algo_child", {"child": order.id, "status": order.status.value})
        if order.status in (OrderStatus.REJECTED, OrderStatus.FAILED):
            raise ChildRefused(f"child {order.id} ({order.type.value} {order.amount}) {order.status.value}: {order.error}")
        self.check()
        return order

    async def cancel_children(self) -> None:
        """Cancel every open child; what they filled meanwhile is counted. A child whose cancel
        fails stays live (callers check ``live()`` before placing another)."""
        for child in self.live():
            self._ours.add(child.id)
            self._busy = True
            try:
                order = await self.engine.cancel_order(child.id)
            except TradedeskError as exc:  # unconfirmed yet, venue down: the halt/tracker settles it
                self._notice("error", f"{self.name}: could not cancel child {child.id}: {exc}")
                continue
            finally:
                self._busy = False
            self._record(order)

    async def sync(self) -> None:
        """Read the open children's state from the engine (the event stream may lag behind)."""
        for child in self.live():
            order = await self.engine.get_order_by_id(child.id)
            if order is not None:
                self._record(order)

    async def sleep_until(self, when: datetime | None) -> None:
        if when is not None:
            seconds = (when - self.now()).total_seconds()
            if seconds > 0:
                await self.engine.clock.sleep(seconds)
        self.check()

    async def wait(self, seconds: float | None) -> bool:
        """Wait for a child to change, or ``seconds`` on the engine clock. True if a child changed."""
        if not self._wake.is_set():
            waiter = asyncio.ensure_future(self._wake.wait())
            tasks = [waiter]
            if seconds is not None:
                tasks.append(asyncio.ensure_future(self.engine.clock.sleep(max(seconds, 0.0))))
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in tasks:
                    t.cancel()
        woke = self._wake.is_set()
        self._wake.clear()
        self.check()
        return woke

    async def touch(self) -> tuple[Decimal, Decimal] | None:
        """The best bid and ask of the parent's symbol now, or None when no price is known."""
        # The engine has no public quote per account: read the account's venue directly.
        acct = self.engine._accounts.get(self.parent.account)  # noqa: SLF001
        if acct is None:
            return None
        quote = acct.venue.quote(self.parent.symbol)
        fetch = getattr(acct.venue, "fetch_quote", None)
        if quote is None and fetch is not None:
            self._busy = True
            try:
                quote = await fetch(self.parent.symbol)
            finally:
                self._busy = False
        return (quote.bid, quote.ask) if quote is not None else None

    # -- lifecycle --------------------------------------------------------------------------

    def launch(self) -> None:
        self._closing = False
        self._foreign_ends = 0
        self.engine.register_algorithm(self)
        if self._on_launch is not None:
            self._on_launch()
        self._task = asyncio.create_task(self._main(), name=f"algo {self.parent.id}")

    async def _main(self) -> None:
        try:
            await self.sync()
            short = await self.run()
        except _Interrupted:
            return
        except ChildRefused as exc:
            await self._end(AlgoStatus.FAILED, "algo_failed", str(exc))
        except Exception as exc:  # noqa: BLE001 - reported on the parent, never lost in a task
            await self._end(AlgoStatus.FAILED, "algo_failed", f"{type(exc).__name__}: {exc}")
        else:
            await self._end(AlgoStatus.COMPLETED, "algo_completed", short or "done")

    async def _end(self, status: AlgoStatus, kind: str, reason: str) -> None:
        """The task ends the parent: cancel the open children, then journal the end."""
        if self._closing:
            return  # paused, cancelled or stopped meanwhile: that call sets the status
        self._busy = True  # ending: not to be interrupted half-way
        try:
            await self.cancel_children()
        except Exception as exc:  # noqa: BLE001 - the parent still ends, and says why
            status, kind = AlgoStatus.FAILED, "algo_failed"
            reason = f"{reason}; cancelling its children raised {type(exc).__name__}: {exc}"
        try:
            await self._finish(status, kind, reason)  # sets the status before it journals
        except Exception as exc:  # noqa: BLE001 - e.g. the journal failed: say so rather than vanish
            self._notice("error", f"{self.name} {status.value} ({reason}) but that could not be journaled: "
                                  f"{type(exc).__name__}: {exc}")

    async def _cancel_or_fail(self, doing: str) -> None:
        """Cancel the open children; an unexpected error fails the parent (journaled) and is raised."""
        try:
            await self.cancel_children()
        except Exception as exc:
            await self._finish(AlgoStatus.FAILED, "algo_failed",
                               f"{doing}; cancelling its children raised {type(exc).__name__}: {exc}")
            raise

    async def _wind_down(self) -> None:
        """Stop the task and wait for it: an engine call in flight finishes first."""
        self._closing = True
        task = self._task
        if task is None or task.done() or task is asyncio.current_task():
            return
        if not self._busy:
            task.cancel()
        await asyncio.wait([task])

    async def pause(self) -> None:
        if self.parent.status is not AlgoStatus.RUNNING:
            raise EngineError(f"algorithm {self.parent.id} is {self.parent.status.value}: only a running one can be paused")
        await self._wind_down()
        if self.parent.status is not AlgoStatus.RUNNING:
            return  # it ended on its own meanwhile
        await self._cancel_or_fail("pausing")
        if self.parent.status is not AlgoStatus.RUNNING:
            return  # halted or cancelled while its children were being cancelled: that status stands
        self.parent.status = AlgoStatus.PAUSED
        self.parent.reason = "paused by the trader"
        await self.journal("algo_paused")

    async def resume(self) -> None:
        if self.parent.status is not AlgoStatus.PAUSED:
            raise EngineError(f"algorithm {self.parent.id} is {self.parent.status.value}: only a paused one can be resumed")
        if self.engine.trading_state is TradingState.HALTED:
            raise EngineError(f"trading is HALTED: algorithm {self.parent.id} cannot resume")
        self.parent.status = AlgoStatus.RUNNING
        self.parent.reason = None
        await self.journal("algo_resumed")
        self.launch()

    async def cancel(self) -> None:
        if self.parent.status.is_final:
            raise EngineError(f"algorithm {self.parent.id} is already {self.parent.status.value}")
        await self._wind_down()
        if self.parent.status.is_final:
            return
        await self._cancel_or_fail("cancelling")
        await self._finish(AlgoStatus.CANCELLED, "algo_cancelled", "cancelled by the trader")

    async def stop(self, reason: str) -> None:
        """The halt's call: no child is placed after this returns. Never waits for the task
        (it may be the very task whose fill tripped the breaker that halts)."""
        if self.parent.status.is_final:
            return
        self._closing = True
        task = self._task
        if task is not None and not task.done() and task is not asyncio.current_task() and not self._busy:
            task.cancel()
        await self._finish(AlgoStatus.STOPPED, "algo_stopped", reason)

    async def stop_at_restart(self, reason: str) -> None:
        """Stopped at start-up: its open children would work unsupervised, so they go."""
        self._closing = True
        await self.sync()
        open_before = len(self.live())
        await self._cancel_or_fail(reason)
        if open_before:
            reason += f"; {open_before} open child order{'s' if open_before > 1 else ''} cancelled"
        await self._finish(AlgoStatus.STOPPED, "algo_stopped", reason)

    async def shutdown(self) -> None:
        """The engine is closing: stop the task, keep the state (a restart resumes or stops it)."""
        await self._wind_down()

    async def _finish(self, status: AlgoStatus, kind: str, reason: str) -> None:
        if self.parent.status.is_final:
            return
        self._closing = True
        self.parent.status = status
        self.parent.reason = reason
        self.engine.unregister_algorithm(self)
        await self.journal(kind)
        level = "info" if status is AlgoStatus.COMPLETED else "warning" if status is not AlgoStatus.FAILED else "error"
        p = self.parent
        self._notice(level, f"{self.name} {status.value}: {reason} ({clean(p.filled)} of {p.amount} {p.symbol} filled)")

    # -- children and the journal ---------------------------------------------------------------

    async def on_child(self, order: Order) -> None:
        """A child changed (from the engine's event stream)."""
        if self._record(order):
            await self.journal("algo_child", {"child": order.id, "status": order.status.value})

    def _record(self, order: Order) -> bool:
        """Keep the newest snapshot of a child and recount the parent; True if that changed it."""
        known = self._children.get(order.id)
        if known is not None and known.revision > order.revision:
            return False  # a stale event
        self._children[order.id] = order
        p = self.parent
        if order.id not in p.child_ids:
            p.child_ids.append(order.id)
        filled = sum((c.filled for c in self._children.values()), ZERO)
        cost = sum((c.filled * c.average_price for c in self._children.values() if c.average_price), ZERO)
        changed = known is None or known.status is not order.status or filled != p.filled
        if known is not None and known.filled != order.filled:
            self._foreign_ends = 0
        elif (known is not None and known.status.is_live and order.status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED)
              and order.id not in self._ours and order.remaining > 0
              and order.time_in_force not in (TimeInForce.IOC, TimeInForce.FOK)):  # those expire by design
            self._foreign_ends += 1
        p.filled = filled
        p.average_price = clean((cost / filled).quantize(_AVG_PLACES)) if filled else None
        if changed:
            self._wake.set()
        return changed

    async def journal(self, kind: str, data: dict[str, Any] | None = None) -> None:
        """Journal the parent (event + state row in one transaction), then publish it."""
        journal = self.engine.journal
        if journal is None:
            raise EngineError("the engine is not running")
        p = self.parent
        p.updated_at = self.now()
        p.revision += 1
        snap = p.model_copy(deep=True)
        raw = snap.model_dump_json()
        payload = {"algo": json.loads(raw), **(data or {})}
        await journal.write(kind, ts=p.updated_at.isoformat(), account=p.account, data=payload,
                            state={f"algo:{p.id}": raw})
        # The engine's stream carries it to the console like any other event.
        self.engine._publish(AlgoUpdated(snap, kind))  # noqa: SLF001

    def _notice(self, level: str, text: str) -> None:
        self.engine._notice(level, text, {"algo": self.parent.id})  # noqa: SLF001

    def far_touch(self, bid: Decimal, ask: Decimal) -> Decimal:
        """The price a taker pays now: the ask for a buy, the bid for a sell."""
        return ask if self.parent.side is Side.BUY else bid

    def near_touch(self, bid: Decimal, ask: Decimal) -> Decimal:
        """The best passive price: the bid for a buy, the ask for a sell."""
        return bid if self.parent.side is Side.BUY else ask

    def beyond(self, price: Decimal, limit: Decimal) -> bool:
        """True when ``price`` is worse than ``limit`` for the parent's side."""
        return price > limit if self.parent.side is Side.BUY else price < limit
