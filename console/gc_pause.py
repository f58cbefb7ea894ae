"""Cyclic garbage collection paused while the console starts.

Start-up makes a few hundred thousand objects that live as long as the process (textual,
pydantic, the core, the screen's widgets), and the collector walking them again and again while
they are made cost ~45 ms of the cold start. Collection is paused from the first import of the
console until the app's first frame is up (the app freezes what it built, then resumes
collection), and for a few seconds at most, should no app ever run in this process (a test
session, a script that only imports).
"""

from __future__ import annotations

import gc
import threading

_timer: threading.Timer | None = None


def pause(limit: float = 3.0) -> None:
    global _timer
    if _timer is not None or not gc.isenabled():
        return  # already paused, or the process runs without the collector on purpose
    gc.disable()
    _timer = threading.Timer(limit, resume)
    _timer.daemon = True
    _timer.start()


def resume() -> None:
    global _timer
    timer, _timer = _timer, None
    if timer is None:
        return
    timer.cancel()
    gc.enable()
