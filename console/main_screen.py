"""The one main screen: composition only. The App wires data in and requests out."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from core.models import OrderRequest
from widgets.account_summary import AccountSummary
from widgets.event_log import EventLog
from widgets.halt_button import HaltButton
from widgets.header_bar import HeaderBar
from widgets.order_entry import OrderEntry
from widgets.orders_view import OrdersView
from widgets.positions_table import PositionsTable


class MainScreen(Screen[None]):
    def __init__(
        self,
        *,
        accounts: str,
        venue: str,
        live: bool,
        symbols: list[str],
        checker: Callable[[OrderRequest], list[str]],
        prices: Callable[[], dict[str, Decimal]],
        halt_key: str,
    ) -> None:
        super().__init__(id="main-screen")
        self._accounts = accounts
        self._venue = venue
        self._live = live
        self._symbols = symbols
        self._checker = checker
        self._prices = prices
        self._halt_key = halt_key

    def on_resize(self) -> None:
        self.set_class(self.size.width < 110, "-narrow")  # 80x24: a slimmer left column

    def compose(self) -> ComposeResult:
        yield HeaderBar(accounts=self._accounts, venue=self._venue, live=self._live, id="header")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield Static("New order", classes="pane-title")
                yield OrderEntry(checker=self._checker, symbols=self._symbols, prices=self._prices,
                                 accounts=[a.strip() for a in self._accounts.split(",")])
                yield HaltButton(self._halt_key)
            with Vertical(id="right"):
                with Vertical(id="orders-pane"):
                    yield Static("", id="orders-title", classes="pane-title")
                    yield OrdersView(id="orders")
                with Vertical(id="positions-pane"):
                    yield Static("Positions", classes="pane-title")
                    yield PositionsTable()
        with Horizontal(id="bottom"):
            yield AccountSummary()
            yield EventLog()
        yield Footer()
