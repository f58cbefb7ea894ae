"""Every Textual message of the console, in one place. Widgets post the requests (``*Requested``,
``OrderSubmitted``); console.bridge posts the updates from the core, coalesced, a few times a
second. Widgets import only this module and core models, never console/ or a venue."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from textual.message import Message

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


# -- from widgets (requests to act) --------------------------------------------------------------


@dataclass
class OrderSubmitted(Message):
    request: OrderRequest
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None


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


class HaltRequested(Message):
    """The big red button."""


@dataclass
class HaltFinished(Message):
    report: HaltReport


class OrdersFilterChanged(Message):
    def __init__(self, filter: str, shown: int, total: int) -> None:
        super().__init__()
        self.filter = filter
        self.shown = shown
        self.total = total
