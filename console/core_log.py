"""The core's log records (warnings and errors, e.g. an exchange stream falling back to polling)
shown in the event log.

Without a handler Python prints them on stderr: over the screen while the console runs, or
before it is drawn. They are held until the event log exists, then written there in order.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

LogLine = Callable[[str, str, datetime], None]  # level, text, when


class CoreLogHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._held: deque[tuple[str, str, datetime]] = deque(maxlen=200)
        self._sink: LogLine | None = None
        self._call_soon_threadsafe: Callable[..., object] | None = None
        self._attached = False

    def attach(self) -> None:
        if not self._attached:
            self._attached = True
            logging.getLogger("core").addHandler(self)

    def detach(self) -> None:
        self._attached = False
        self._sink = None
        logging.getLogger("core").removeHandler(self)

    def deliver_to(self, sink: LogLine, call_soon_threadsafe: Callable[..., object]) -> None:
        """From now on, records go to ``sink`` (on the app's thread); the held ones first."""
        self._sink, self._call_soon_threadsafe = sink, call_soon_threadsafe
        while self._held:
            sink(*self._held.popleft())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = ("error" if record.levelno >= logging.ERROR else "warning", record.getMessage(),
                    datetime.fromtimestamp(record.created, UTC))
        except Exception:  # noqa: BLE001 - a bad format string must not break the caller
            self.handleError(record)
            return
        if self._sink is None:
            self._held.append(line)
        elif threading.current_thread() is threading.main_thread():
            self._sink(*line)
        else:  # a worker thread: never block it on the app
            assert self._call_soon_threadsafe is not None
            self._call_soon_threadsafe(self._sink, *line)
