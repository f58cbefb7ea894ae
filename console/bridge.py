"""Turns the core's event stream into a few coalesced Textual messages per second.

Runs as a worker. It waits for the first event, lets more arrive for ``interval`` seconds, then
keeps only the newest snapshot of each order and algorithm (highest revision), position and
account, merges prices, and posts one message of each kind (the account figures: one per
account; orders the desk stopped tracking leave the batch for OrdersIgnored). Under 1,000
updates/s the screen sees at most 1 / interval refreshes per second, each a keyed diff.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

from textual.message_pump import MessagePump

from core import Engine
from core.algos_model import ParentOrder
from core.events import (
    AccountChanged,
    AlgoUpdated,
    FillReceived,
    Notice,
    OrderUpdated,
    PositionChanged,
    PricesUpdated,
    TradingStateChanged,
)
from core.models import AccountStatus, Order, Position
from widgets import messages as m


class EngineBridge:
    def __init__(self, engine: Engine, target: MessagePump, interval: float = 0.05) -> None:
        self.engine = engine
        self.target = target
        self.interval = interval
        self.flushes = 0
        self._stream = engine.events()

    async def run(self) -> None:
        """Post at most one flush per ``interval``: an event after a quiet spell goes out at
        once; under load, events gather until the interval since the last flush has passed."""
        stream = self._stream
        last = 0.0
        try:
            async for first in stream:
                wait = self.interval - (time.monotonic() - last)
                if wait > 0:
                    await asyncio.sleep(wait)
                self.post([first, *stream.drain()])
                last = time.monotonic()
        finally:
            stream.close()

    def flush(self) -> None:
        """Post whatever is queued now (tests call this instead of waiting for the timer)."""
        self.post(self._stream.drain())

    def post(self, events: list[object]) -> None:
        orders: dict[str, Order] = {}
        algos: dict[str, ParentOrder] = {}
        positions: dict[tuple[str, str], Position] = {}
        accounts: dict[str, AccountStatus] = {}  # the newest of each: the summary shows their total
        ignored: dict[str, int] = {}  # order id -> revision of its order_ignored snapshot
        prices: dict[str, Decimal] = {}
        notices: list[Notice] = []
        state: TradingStateChanged | None = None
        for ev in events:
            if isinstance(ev, OrderUpdated):
                prev = orders.get(ev.order.id)
                if prev is None or prev.revision <= ev.order.revision:
                    orders[ev.order.id] = ev.order
                if ev.kind == "order_ignored":
                    ignored[ev.order.id] = ev.order.revision
                elif ev.kind == "risk_refused":
                    notices.append(Notice("warning", f"refused {ev.order.symbol} {ev.order.side.value} {ev.order.amount}: "
                                          f"{(ev.order.error or '').removeprefix('refused: ')}", ev.order.updated_at))
                elif ev.kind == "order_rejected":
                    notices.append(Notice("warning", f"rejected {ev.order.id}: {ev.order.error}", ev.order.updated_at))
            elif isinstance(ev, AlgoUpdated):
                prev_algo = algos.get(ev.parent.id)
                if prev_algo is None or prev_algo.revision <= ev.parent.revision:
                    algos[ev.parent.id] = ev.parent
            elif isinstance(ev, FillReceived):
                f = ev.fill
                notices.append(Notice("fill", f"fill {f.side.value} {f.amount} {f.symbol} @ {f.price} ({f.order_id})", f.timestamp))
            elif isinstance(ev, PositionChanged):
                positions[(ev.position.account, ev.position.symbol)] = ev.position
            elif isinstance(ev, AccountChanged):
                accounts[ev.status.account] = ev.status
            elif isinstance(ev, PricesUpdated):
                prices.update(ev.prices)
            elif isinstance(ev, TradingStateChanged):
                state = ev
            elif isinstance(ev, Notice):
                notices.append(ev)
        for order_id, revision in ignored.items():  # unless something newer happened to it since
            if orders[order_id].revision <= revision:
                del orders[order_id]
        post = self.target.post_message
        if ignored:
            post(m.OrdersIgnored(list(ignored)))
        if algos:  # before the orders: a new child finds its parent's row
            post(m.AlgosChanged(list(algos.values())))
        if orders:
            post(m.OrdersChanged(list(orders.values())))
        if positions:
            post(m.PositionsChanged(list(positions.values())))
        for status in accounts.values():
            post(m.AccountChanged(status))
        if prices:
            post(m.PricesChanged(prices))
        if state is not None:
            post(m.TradingStateChanged(state.state, state.reason))
        if notices:
            post(m.NoticesPosted(notices[-500:]))
        self.flushes += 1
