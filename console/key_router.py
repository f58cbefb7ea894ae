"""The app's keys, routed one at a time: a key goes to the focused widget only once the key
before it, and what it set off, is done.

Textual routes each key to the widget focused when the app reads it and goes straight on to the
next, while each widget works through its own queue. Keys read together (fast typing, a slow SSH
link, tmux send-keys, a macro) for different widgets then ran in no fixed order: a two-order
ticket in one read, ``0.02 Tab Tab 50100 Enter F2 0.03 Enter``, placed one order of 0.03, and
the keys behind a key that opens a dialog went to the field beneath it or were lost.

Here a key the app routes to a widget is followed there by a callback, which climbs back up to
the app one queue at a time, as the key bubbles, so it arrives after the key and whatever the
key bubbled. It goes through the widget once more, for what the widget posted itself while
handling the key (a pane's "m" asks the app for the modify dialog); and if the screen changed,
through the new screen, after its mount and its focus. Only then is the next key routed. The
halt key never waits: it is run as it is read.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from itertools import count
from typing import TYPE_CHECKING

from textual import events

if TYPE_CHECKING:
    from textual.app import App
    from textual.message_pump import MessagePump
    from textual.screen import Screen

# How often to check that a key's callback still sits in a live queue. A slow key (a stalled
# loop, a big redraw) is waited for; one whose queue closed under it (at exit) is given up on,
# and so is any key after GIVE_UP_AT_LAST, so a wedged widget never holds the keyboard for good.
GIVE_UP_AFTER = 1.0
GIVE_UP_AT_LAST = 10.0


@dataclass
class _InFlight:
    seq: int
    again: MessagePump | None  # the widget to go through once more, for what it posted itself
    screen: Screen[object]
    give_up: asyncio.TimerHandle
    sent_at: float
    at: MessagePump | None = None  # the queue the callback sits in now


class KeyRouter:
    def __init__(self, app: App[object], route: Callable[[events.Event], Awaitable[None]],
                 bypass: Callable[[events.Key], bool]) -> None:
        self._app = app
        self._route = route  # Textual's own: the priority bindings, else forward to the focus
        self._bypass = bypass
        self._waiting: deque[events.Event] = deque()
        self._busy: _InFlight | None = None
        self._seq = count(1)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def receive(self, event: events.Key | events.Paste) -> None:
        if self._busy is None and not self._waiting:
            await self._send(event)
        elif isinstance(event, events.Key) and self._bypass(event):
            await self._route(event)
        else:
            self._waiting.append(event)

    async def _send(self, event: events.Event) -> None:
        app = self._app
        seq = next(self._seq)
        screen = app.screen
        target = app.focused or screen
        loop = asyncio.get_running_loop()
        self._busy = _InFlight(seq, None, screen, loop.call_later(GIVE_UP_AFTER, self._check_lost, seq), loop.time())
        await self._route(event)
        if event.is_forwarded:  # to the focused widget: follow it there, and once more
            self._busy.again = target
            self._follow(target, seq)
        else:  # a binding ran in the app (Tab, F2...): what it queued in the app runs first
            self._follow(app, seq)

    def _check_lost(self, seq: int) -> None:
        busy = self._busy
        if busy is None or busy.seq != seq:
            return
        loop = asyncio.get_running_loop()
        at = busy.at
        alive = at is not None and not at._closed and (at is self._app or (at._task is not None and not at._task.done()))
        if alive and loop.time() - busy.sent_at < GIVE_UP_AT_LAST:  # slow, not lost
            busy.give_up = loop.call_later(GIVE_UP_AFTER, self._check_lost, seq)
        else:
            self._app.call_later(self._arrived, seq, True)

    def _follow(self, node: MessagePump, seq: int) -> None:
        if self._busy is not None and self._busy.seq == seq:
            self._busy.at = node
        if not node.call_later(self._climb, node, seq):  # closed: nothing more can come from it
            self._app.call_later(self._arrived, seq)

    def _climb(self, node: MessagePump, seq: int) -> Awaitable[None] | None:
        if node is self._app:
            return self._arrived(seq)
        self._follow(node._parent or self._app, seq)  # no parent: removed from the screen
        return None

    async def _arrived(self, seq: int, gave_up: bool = False) -> None:
        busy = self._busy
        if busy is None or seq != busy.seq:  # given up on, arriving late
            return
        if gave_up:
            self._done()
        elif busy.again is not None:
            again, busy.again = busy.again, None
            self._follow(again, seq)
        elif self._app.screen is not busy.screen:
            busy.screen = self._app.screen
            self._follow(busy.screen, seq)
        else:
            self._done()
        while self._busy is None and self._waiting:
            await self._send(self._waiting.popleft())

    def _done(self) -> None:
        if self._busy is not None:
            self._busy.give_up.cancel()
            self._busy = None
