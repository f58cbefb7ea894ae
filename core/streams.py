"""Subscriptions to the engine's events: an async iterator per subscriber."""

from __future__ import annotations

import asyncio
from typing import Any

_END = object()


class EventStream:
    """Receives every event published after it was created, in order.

    ``async for event in stream`` waits for the next one; ``drain()`` takes whatever is queued
    without waiting (a UI flushing a few times a second uses that).
    """

    def __init__(self, registry: list[EventStream]) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._registry = registry
        self._ended = False

    def put(self, event: object) -> None:
        self._queue.put_nowait(event)

    def end(self) -> None:
        self._queue.put_nowait(_END)
        self.close()

    def close(self) -> None:
        if self in self._registry:
            self._registry.remove(self)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Any:
        if self._ended:
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is _END:
            self._ended = True
            raise StopAsyncIteration
        return item

    def drain(self) -> list[Any]:
        items = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is _END:
                self._ended = True
                break
            items.append(item)
        return items

    @property
    def ended(self) -> bool:
        return self._ended
