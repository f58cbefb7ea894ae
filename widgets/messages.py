"""Every Textual message of the console, in one place. Widgets post the requests (``*Requested``,
``OrderSubmitted``); console.bridge posts the updates from the core, coalesced, a few times a
second. Widgets import only this module and core models, never console/ or a venue."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from textual.message import Message

from core.algos_model import ParentOrder
from core.events import Notice
from core.halt import HaltReport
from core.models import AccountStatus, Order, OrderRequest, Position, TradingState


# -- from the core (posted by console.bridge) -------------------------------------------------


class OrdersChanged(Message):
    """The newest snapshot of every order that changed since the last flush."""

    def __init__(self, orders: list[Order]) -> None:
        super().__init__()
        self.orders = orders


class PositionsChanged(Message):
    def __init__(self, positions: list[Position]) -> None:
        super().__init__()
        self.positions = positions


class AccountChanged(Message):
    def __init__(self, status: AccountStatus) -> None:
        super().__init__()
        self.status = status


class PricesChanged(Message):
    def __init__(self, prices: dict[str, Decimal]) -> None:
        super().__init__()
        self.prices = prices


class TradingStateChanged(Message):
    def __init__(self, state: TradingState, reason: str) -> None:
        super().__init__()
        self.state = state
        self.reason = reason


class NoticesPosted(Message):
    def __init__(self, notices: list[Notice]) -> None:
        super().__init__()
        self.notices = notices


class AlgosChanged(Message):
    """The newest snapshot of every algorithm (parent order) that changed since the last flush."""

    def __init__(self, parents: list[ParentOrder]) -> None:
        super().__init__()
        self.parents = parents


class OrdersIgnored(Message):
    """Orders the desk stopped tracking (``Engine.ignore_order``): they leave the orders pane."""

    def __init__(self, order_ids: list[str]) -> None:
        super().__init__()
        self.order_ids = order_ids


# -- from widgets (requests to act) --------------------------------------------------------------


@dataclass
class OrderSubmitted(Message):
    request: OrderRequest


@dataclass
class ContingentSubmitted(Message):
    """From the order entry: a bracket, an OCO pair or a trailing stop. ``params`` are the keyword
    arguments of the engine's ``place_bracket_order`` / ``place_oco_order`` / ``place_trailing_stop``
    after symbol, side and amount; ``summary`` is the line the trader saw before pressing Enter."""

    kind: Literal["bracket", "oco", "trailing"]
    symbol: str
    side: str
    amount: Decimal
    params: dict[str, object]
    summary: str


@dataclass
class ProtectionDialogRequested(Message):
    """From the positions pane: move the stop-loss or take-profit of this position."""

    position: Position
    role: Literal["stop_loss", "take_profit"]


@dataclass
class ProtectionSubmitted(Message):
    """From the protection dialog: move every stop-loss (take-profit) of the position to ``price``."""

    account: str
    symbol: str
    role: Literal["stop_loss", "take_profit"]
    price: Decimal


@dataclass
class CancelRequested(Message):
    order_id: str


@dataclass
class CancelSymbolRequested(Message):
    symbol: str


@dataclass
class ModifyRequested(Message):
    order_id: str


@dataclass
class ClosePositionRequested(Message):
    symbol: str


@dataclass
class AlgoStartRequested(Message):
    """From the algo dialog: ``params`` are the keyword arguments of ``engine.algos.start_<kind>``."""

    kind: str  # twap | iceberg | limit_then_market
    symbol: str
    side: str
    amount: Decimal
    params: dict[str, object]


@dataclass
class AlgoPauseRequested(Message):
    """Pause a running algorithm, or resume a paused one."""

    algo_id: str


@dataclass
class AlgoCancelRequested(Message):
    algo_id: str


class HaltRequested(Message):
    """The big red button."""


class ReconcileRequested(Message):
    """Reconcile every account with its venue now (the reconciliation view's r)."""


@dataclass
class KeepExternalRequested(Message):
    """Keep tracking an order reconciliation adopted from the venue."""

    order_id: str


@dataclass
class IgnoreExternalRequested(Message):
    """Stop tracking an adopted external order; the venue is told nothing."""

    order_id: str
    reason: str


@dataclass
class HaltFinished(Message):
    report: HaltReport


class OrdersFilterChanged(Message):
    def __init__(self, filter: str, shown: int, total: int) -> None:
        super().__init__()
        self.filter = filter
        self.shown = shown
        self.total = total
