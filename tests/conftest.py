from __future__ import annotations

import os
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from core import Engine, ManualClock
from core.venues.sim import SimDials


@pytest.fixture(autouse=True, scope="session")
def _user_cache_folder(tmp_path_factory: pytest.TempPathFactory) -> None:
    """`tradedesk` keeps its parsed style sheets in the user cache folder (console.styles_cache):
    the tests' runs of it, in this process or in a child, use a temporary one."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("user-cache"))


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


async def on_clock(clock: ManualClock, awaitable, engine: Engine | None = None, max_jumps: int = 10_000):  # noqa: ANN001, ANN201
    """Await ``awaitable`` while moving ``clock`` forward whenever all other work is waiting on
    it: retries back off and deadlines pass without a wall-clock sleep. Before each jump the
    engine's journal is flushed, so pending disk writes never look like idle time."""
    import asyncio

    task = asyncio.ensure_future(awaitable)
    for _ in range(max_jumps):
        while True:
            for _ in range(50):
                if task.done():
                    return task.result()
                await asyncio.sleep(0)
            if engine is None or engine.journal is None or engine._closed or engine.journal.idle:
                break
            await engine.journal.flush()
        if task.done():
            return task.result()
        deadline = clock.next_deadline()
        if deadline is None:
            continue
        clock.advance(max(deadline - clock.monotonic(), 0.0))
    raise AssertionError("on_clock: the awaited work did not finish")
