"""Events the engine publishes to its subscribers (the console, scripts, tests).

They are published after the change they describe is durable in the journal, and carry
snapshots: a subscriber may keep them without seeing later changes under its feet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from core.algos_model import AlgoUpdated  # a parent order changed (execution algorithms)
from core.models import AccountStatus, Fill, Order, Position, TradingState


@dataclass(frozen=True, slots=True)
class OrderUpdated:
    order: Order
    kind: str  # the journal event kind: order_created, order_acked, order_cancelled, ...


@dataclass(frozen=True, slots=True)
class FillReceived:
    fill: Fill


@dataclass(frozen=True, slots=True)
class PositionChanged:
    position: Position


@dataclass(frozen=True, slots=True)
class AccountChanged:
    status: AccountStatus


@dataclass(frozen=True, slots=True)
class PricesUpdated:
    prices: dict[str, Decimal]  # symbol -> last price
    at: datetime


@dataclass(frozen=True, slots=True)
class TradingStateChanged:
    state: TradingState
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Notice:
    level: str  # info | warning | error
    text: str
    at: datetime
    data: dict[str, object] = field(default_factory=dict)


EngineEvent = (
    OrderUpdated | FillReceived | PositionChanged | AccountChanged | PricesUpdated | TradingStateChanged | Notice
    | AlgoUpdated
)
