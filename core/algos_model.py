"""Execution algorithms, the data: a parent order, its parameters and the event published when
it changes. The parent is journaled (events ``algo_*``) and its current state kept in the
journal's state table under ``algo:<id>``, so a restart finds it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.models import ZERO, Dec, Side

TAG_PREFIX = "algo:"  # children carry OrderRequest.tag = "algo:<parent id>"


class AlgoKind(StrEnum):
    TWAP = "twap"
    ICEBERG = "iceberg"
    LIMIT_THEN_MARKET = "limit_then_market"


class AlgoStatus(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    STOPPED = "stopped"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self not in (AlgoStatus.RUNNING, AlgoStatus.PAUSED)


_PARAMS = ConfigDict(extra="forbid", frozen=True, defer_build=True)
_Positive = Annotated[Dec, Field(gt=0, allow_inf_nan=False)]
_Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class TwapParams(BaseModel):
    """``slices`` children, one every ``duration / slices`` seconds; each takes what is left
    divided by the slices left (lot-rounded down), the last takes the rest."""

    model_config = _PARAMS

    kind: Literal["twap"] = "twap"
    duration: _Seconds
    slices: int = Field(ge=1, le=10_000)
    child_type: Literal["limit", "market"] = "market"
    price_limit: _Positive | None = None  # a slice whose price is beyond it is skipped


class IcebergParams(BaseModel):
    """One visible child of ``visible`` at ``price`` at a time; ``refresh`` seconds without
    filling replaces it (None: it rests until it fills)."""

    model_config = _PARAMS

    kind: Literal["iceberg"] = "iceberg"
    visible: _Positive
    price: _Positive
    refresh: _Seconds | None = None


class LimitThenMarketParams(BaseModel):
    """A limit at ``price`` for ``timeout`` seconds, then what is left at market."""

    model_config = _PARAMS

    kind: Literal["limit_then_market"] = "limit_then_market"
    price: _Positive
    timeout: _Seconds


AlgoParams = Annotated[TwapParams | IcebergParams | LimitThenMarketParams, Field(discriminator="kind")]


class ParentOrder(BaseModel):
    """An algorithm's parent order: what it must do, how far it got, and its children."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    id: str
    kind: AlgoKind
    account: str
    symbol: str
    side: Side
    amount: Dec
    params: AlgoParams
    status: AlgoStatus = AlgoStatus.RUNNING
    filled: Dec = ZERO
    average_price: Dec | None = None
    child_ids: list[str] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime
    reason: str | None = None
    # Progress a restart resumes from.
    slices_done: int = 0  # TWAP: slices taken or skipped
    next_at: datetime | None = None  # TWAP: when the next slice is due; limit-then-market: end of the limit phase
    phase: Literal["limit", "market"] | None = None  # limit-then-market
    revision: int = 0  # bumped on every journaled change (a subscriber drops stale snapshots)

    @property
    def remaining(self) -> Decimal:
        return self.amount - self.filled

    @property
    def tag(self) -> str:
        return f"{TAG_PREFIX}{self.id}"


@dataclass(frozen=True, slots=True)
class AlgoUpdated:
    """Published on the engine's event stream after the change is journaled."""

    parent: ParentOrder
    kind: str  # algo_started, algo_child, algo_skipped, algo_paused, algo_resumed, algo_completed, ...
