from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from core import Engine, ManualClock
from core.venues.sim import SimDials

if TYPE_CHECKING:
    from tests.loopback.common import CcxtRequests
    from tests.loopback.okx import LoopbackOkx


_USER_CACHE: tempfile.TemporaryDirectory[str] | None = None


def pytest_configure(config: pytest.Config) -> None:
    """`tradedesk` keeps its parsed style sheets and generated code in the user cache folder
    (console.styles_cache, console.code_cache): the tests' runs of it, in this process or in a
    child, use a temporary one. Set before collection: importing the console reads it."""
    global _USER_CACHE
    _USER_CACHE = tempfile.TemporaryDirectory(prefix="tradedesk-user-cache-")
    os.environ["XDG_CACHE_HOME"] = _USER_CACHE.name


def pytest_unconfigure(config: pytest.Config) -> None:
    if _USER_CACHE is not None:
        _USER_CACHE.cleanup()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite"


@pytest.fixture
async def engine(db: Path, clock: ManualClock) -> AsyncIterator[Engine]:
    async with Engine.paper(db=db, seed=7, clock=clock, balance=Decimal(100_000)) as eng:
        yield eng


def paper(db: Path, clock: ManualClock, dials: SimDials | None = None, **kw: object) -> Engine:
    return Engine.paper(db=db, seed=7, clock=clock, balance=Decimal(100_000), dials=dials, **kw)  # type: ignore[arg-type]


async def on_clock(clock: ManualClock, awaitable, engine: Engine | None = None, max_jumps: int = 10_000,  # noqa: ANN001, ANN201
                   *, settle: Callable[[], Awaitable[bool]] | None = None):
    """Await ``awaitable`` while moving ``clock`` forward whenever all other work is waiting on
    it: retries back off and deadlines pass without a wall-clock sleep. Before each jump the
    engine's journal is flushed, so pending disk writes never look like idle time.

    ``settle`` (an async callable returning True if it had to wait) covers work that waits on
    something other than ``clock`` and would otherwise look idle: before each jump it is awaited
    and, if it waited, the loop is watched again. With a real ccxt client and a loopback exchange,
    ``CcxtRequests.settle`` (the ``ccxt_requests`` fixture): ccxt's rate limiter sleeps on the wall
    clock and a request spends several loop turns on its sockets, so without it the 50 turns below
    can end mid-request and the clock jumps to a deadline the request would have met."""
    import asyncio

    task = asyncio.ensure_future(awaitable)
    for _ in range(max_jumps):
        while True:
            for _ in range(50):
                if task.done():
                    return task.result()
                await asyncio.sleep(0)
            if not (engine is None or engine.journal is None or engine._closed or engine.journal.idle):
                await engine.journal.flush()
                continue
            if settle is not None:
                waiting = asyncio.ensure_future(settle())
                await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
                if not waiting.done():  # the work finished first: the next turn returns it
                    waiting.cancel()
                    continue
                if waiting.result():
                    continue
            break
        if task.done():
            return task.result()
        deadline = clock.next_deadline()
        if deadline is None:
            continue
        clock.advance(max(deadline - clock.monotonic(), 0.0))
    raise AssertionError("on_clock: the awaited work did not finish")


@pytest.fixture
def ccxt_requests(monkeypatch: pytest.MonkeyPatch) -> CcxtRequests:
    """The ccxt REST requests outstanding in this test (``tests.loopback.common.CcxtRequests``):
    pass ``settle=ccxt_requests.settle`` to ``on_clock`` when the engine talks to a loopback."""
    from tests.loopback.common import CcxtRequests
    from tests.loopback.okx import LoopbackOkx

    return CcxtRequests().install(monkeypatch)


@pytest.fixture
async def okx() -> AsyncIterator[LoopbackOkx]:
    """The loopback OKX server (tests/loopback/okx.py) that ccxt's real okx class talks to."""
    from tests.loopback.okx import LoopbackOkx

    async with LoopbackOkx() as srv:
        yield srv
