from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from core import Engine, ManualClock
from core.venues.sim import SimDials


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
