"""When each tracked order next needs a look at its venue: an adaptive polling schedule.

An order just acked or just changed is the one most likely to change again, so it is looked at
every ``fast`` seconds while it is fresh; after that the interval doubles at each quiet look
until it settles at ``slow``, and any change resets it. While a websocket stream reports the
order, a look is only a safety net every ``streamed`` seconds. Times are the monotonic seconds
of the engine's clock, so tests move them with ``ManualClock.advance``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(slots=True)
class _Entry:
    symbol: str
    due: float
    interval: float
    changed_at: float
    retry_wait: float = 0.0  # the wait after the last failed look; 0 once a look succeeds


class PollSchedule:
    def __init__(self, *, fast: float, slow: float, fresh_for: float, streamed: float) -> None:
        if not 0 < fast <= slow:
            raise ValueError(f"poll intervals must satisfy 0 < fast <= slow, got fast={fast:g}, slow={slow:g}")
        self.fast = fast
        self.slow = slow
        self.fresh_for = fresh_for
        self.streamed = streamed
        self._entries: dict[str, _Entry] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list[str]:
        return list(self._entries)

    def add(self, key: str, symbol: str, now: float, *, streamed: bool = False) -> None:
        """Start following ``key``: its first look is at once, unless a stream already covers it."""
        self._entries[key] = _Entry(symbol, now + (self.streamed if streamed else 0.0), self.fast, now)

    def forget(self, key: str) -> None:
        self._entries.pop(key, None)

    def due_at(self, key: str) -> float | None:
        entry = self._entries.get(key)
        return None if entry is None else entry.due

    def due(self, now: float) -> dict[str, list[str]]:
        """The keys due for a look, by symbol (one open-orders read covers a symbol)."""
        out: dict[str, list[str]] = {}
        for key, e in self._entries.items():
            if e.due <= now:
                out.setdefault(e.symbol, []).append(key)
        return out

    def of_symbol(self, symbol: str) -> list[str]:
        return [k for k, e in self._entries.items() if e.symbol == symbol]

    def looked(self, key: str, now: float, *, changed: bool, streamed: bool = False) -> None:
        """Book a look at ``key`` and pick the next one."""
        e = self._entries.get(key)
        if e is None:
            return
        e.retry_wait = 0.0
        if changed:
            e.changed_at = now
        if streamed:
            interval = self.streamed
        elif changed or now - e.changed_at < self.fresh_for:
            interval = self.fast
        else:
            interval = min(self.slow, max(e.interval, self.fast) * 2)  # quiet: decay towards the resting pace
        if not streamed:
            e.interval = interval
        e.due = now + interval

    def changed(self, key: str, now: float, *, streamed: bool) -> None:
        """Something reported a change of ``key`` (a stream): it is fresh again."""
        self.looked(key, now, changed=True, streamed=streamed)

    def hurry(self, keys: Iterable[str], at: float) -> None:
        """Look at ``keys`` no later than ``at`` (a stream dropped, a report is incomplete)."""
        for key in keys:
            e = self._entries.get(key)
            if e is not None and e.due > at:
                e.due = at

    def retry(self, keys: Iterable[str], now: float, at_least: float | None = None) -> None:
        """A look failed: try again, each time twice as late (from ``fast`` up to ``slow``), so a
        venue that is down or rate-limiting is not hammered; never before ``at_least`` seconds
        when the venue said so (a rate limit's Retry-After)."""
        for key in keys:
            e = self._entries.get(key)
            if e is not None:
                e.retry_wait = min(self.slow, e.retry_wait * 2 if e.retry_wait else self.fast)
                e.due = now + max(e.retry_wait, at_least or 0.0)

    def next_due(self) -> float | None:
        return min((e.due for e in self._entries.values()), default=None)
