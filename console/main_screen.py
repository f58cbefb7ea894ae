"""The one main screen: composition only. The App wires data in and requests out."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Static

from core.models import OrderRequest
from widgets.account_summary import AccountSummary
from widgets.event_log import EventLog
from widgets.halt_button import HaltButton
from widgets.header_bar import HeaderBar
from widgets.key_footer import KeyFooter
from widgets.order_entry import Markets, OrderEntry
from widgets.orders_view import OrdersView
from widgets.positions_table import PositionsTable


NARROW_BELOW = 110  # columns: below this the left column slims down (80x24 terminals)


class MainScreen(Screen[None]):
    # The amount field has focus from the first frame: focusing another field first and moving
    # later would rebuild the footer's keys once more at start-up.
    AUTO_FOCUS = "#in-amount"

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
        markets: Markets | None = None,  # fee rates for the order preview
    ) -> None:
        super().__init__(id="main-screen")
        self._accounts = accounts
        self._venue = venue
        self._live = live
        self._symbols = symbols
        self._checker = checker
        self._prices = prices
        self._markets = markets
        self._halt_key = halt_key
        self._resumed = False

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        # Runs before Screen's own handler. The first resume comes right after the mount,
        # which styled every widget already: restyling the whole screen again cost ~20 ms of
        # the cold start. Later resumes (a modal closed) restyle as usual.
        if not self._resumed:
            self._resumed = True
            event.refresh_styles = False

    def on_mount(self) -> None:
        # Textual's toast rack starts shown and is hidden at the first resume, which laid the
        # screen out again after the first frame: hidden from the start (a toast shows it).
        self.query("#textual-toastrack").set(display=False)  # absent when notifications are off

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(self.size.width < NARROW_BELOW, "-narrow")
        if event.size == self.outer_size:
            # Already laid out at this size (start-up sends the screen the same size three
            # times, each a full layout and paint, ~12 ms): Screen's handler is skipped.
            event.prevent_default()

    def compose(self) -> ComposeResult:
        # Set before the children mount: set later, the class change restyles the whole screen.
        self.set_class(self.app.size.width < NARROW_BELOW, "-narrow")
        yield HeaderBar(accounts=self._accounts, venue=self._venue, live=self._live, id="header")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield Static("New order", classes="pane-title")
                yield OrderEntry(checker=self._checker, symbols=self._symbols, prices=self._prices,
                                 markets=self._markets, accounts=[a.strip() for a in self._accounts.split(",")])
                yield HaltButton(self._halt_key)
            with Vertical(id="right"):
                with Vertical(id="orders-pane"):
                    yield Static("", id="orders-title", classes="pane-title")
                    yield OrdersView(id="orders")
                with Vertical(id="positions-pane"):
                    yield Static("Positions", classes="pane-title")
                    yield PositionsTable()
        with Horizontal(id="bottom", classes="-multi" if "," in self._accounts else None):  # totals need lines
            yield AccountSummary()
            yield EventLog()
        yield KeyFooter()
