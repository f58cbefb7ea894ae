"""Turns the core's event stream into a few coalesced Textual messages per second.

Runs as a worker. It waits for the first event, lets more arrive for ``interval`` seconds, then
keeps only the newest snapshot of each order (highest revision), position and account, merges
prices, and posts one message of each kind. Under 1,000 updates/s the screen sees at most
1 / interval refreshes per second, each a keyed diff.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

from textual.message_pump import MessagePump

from core import Engine
from core.events import (
    AccountChanged,
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
        positions: dict[tuple[str, str], Position] = {}
        account: AccountStatus | None = None
        prices: dict[str, Decimal] = {}
        notices: list[Notice] = []
        state: TradingStateChanged | None = None
        for ev in events:
            if isinstance(ev, OrderUpdated):
                prev = orders.get(ev.order.id)
                if prev is None or prev.revision <= ev.order.revision:
                    orders[ev.order.id] = ev.order
                if ev.kind == "risk_refused":
                    notices.append(Notice("warning", f"refused {ev.order.symbol} {ev.order.side.value} {ev.order.amount}: "
                                          f"{(ev.order.error or '').removeprefix('refused: ')}", ev.order.updated_at))
                elif ev.kind == "order_rejected":
                    notices.append(Notice("warning", f"rejected {ev.order.id}: {ev.order.error}", ev.order.updated_at))
            elif isinstance(ev, FillReceived):
                f = ev.fill
                notices.append(Notice("fill", f"fill {f.side.value} {f.amount} {f.symbol} @ {f.price} ({f.order_id})", f.timestamp))
            elif isinstance(ev, PositionChanged):
                positions[(ev.position.account, ev.position.symbol)] = ev.position
            elif isinstance(ev, AccountChanged):
                account = ev.status
            elif isinstance(ev, PricesUpdated):
                prices.update(ev.prices)
            elif isinstance(ev, TradingStateChanged):
                state = ev
            elif isinstance(ev, Notice):
                notices.append(ev)
        post = self.target.post_message
        if orders:
            post(m.OrdersChanged(list(orders.values())))
        if positions:
            post(m.PositionsChanged(list(positions.values())))
        if account is not None:
            post(m.AccountChanged(account))
        if prices:
            post(m.PricesChanged(prices))
        if state is not None:
            post(m.TradingStateChanged(state.state, state.reason))
        if notices:
            post(m.NoticesPosted(notices[-500:]))
        self.flushes += 1
