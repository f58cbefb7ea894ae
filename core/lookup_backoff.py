"""When an unresolved order may next be looked up: a per-order backoff on the engine's clock.

An order whose submit answer was lost is settled by looking its client order id up. The
engine ticks every 0.25 s; asking at every tick would hammer an exchange that is slow or
rate-limiting us, so each order is asked at once, then after 0.5 s, 1 s, 2 s, ... up to 10 s.
Times are the monotonic seconds of the engine's clock (``ManualClock`` in tests).
"""

from __future__ import annotations

from collections.abc import Iterable


class LookupBackoff:
    def __init__(self, initial: float = 0.5, maximum: float = 10.0) -> None:
        if not 0 < initial <= maximum:
            raise ValueError(f"lookup backoff needs 0 < initial <= maximum, got initial={initial:g}, maximum={maximum:g}")
        self.initial = initial
        self.maximum = maximum
        self._next: dict[str, tuple[float, float]] = {}  # key -> (due at, the wait after that look)

    def due(self, key: str, now: float) -> bool:
        """Whether ``key`` may be looked up now; if so, the look is booked and the next one
        waits twice as long as the last (at most ``maximum``)."""
        at, wait = self._next.get(key, (now, self.initial))
        if now < at:
            return False
        self._next[key] = (now + wait, min(wait * 2, self.maximum))
        return True

    def keep_only(self, keys: Iterable[str]) -> None:
        """Forget every key not in ``keys`` (orders that were settled)."""
        wanted = set(keys)
        for key in [k for k in self._next if k not in wanted]:
            del self._next[key]
