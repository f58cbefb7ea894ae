"""The top line: account and venue, PAPER/LIVE (impossible to miss), trading state, clock."""

from __future__ import annotations

from datetime import datetime

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.reactive import reactive
from textual.widgets import Static

from core.models import TradingState


class HeaderBar(Horizontal):
    DEFAULT_CSS = """
    HeaderBar { height: 1; }
    HeaderBar > Static { width: auto; padding: 0 1; }
    HeaderBar #hdr-state { width: 1fr; }
    """

    state: reactive[TradingState] = reactive(TradingState.ACTIVE)
    reason: reactive[str] = reactive("")
    now: reactive[datetime | None] = reactive(None)

    def __init__(self, *, accounts: str, venue: str, live: bool, id: str | None = None) -> None:
        super().__init__(id=id)
        self._accounts = accounts
        self._venue = venue
        self._live = live

    def compose(self) -> ComposeResult:
        yield Static("tradedesk", id="hdr-title")
        yield Static(f"{self._accounts} @ {self._venue}", id="hdr-account")
        mode = Static("LIVE" if self._live else "PAPER", id="hdr-mode")
        mode.add_class("-live" if self._live else "-paper")
        yield mode
        yield Static("", id="hdr-state")
        yield Static("", id="hdr-clock")

    def on_mount(self) -> None:
        self._show_state()

    def watch_state(self) -> None:
        self._show_state()

    def watch_reason(self) -> None:
        self._show_state()

    def watch_now(self, now: datetime | None) -> None:
        if now is not None:
            try:
                self.query_one("#hdr-clock", Static).update(now.strftime("%Y-%m-%d %H:%M:%S UTC"))
            except NoMatches:
                pass

    def _show_state(self) -> None:
        try:
            label = self.query_one("#hdr-state", Static)
        except NoMatches:  # not composed yet: on_mount shows it
            return
        for s in TradingState:
            if label.has_class(f"-{s.value.lower()}") != (self.state is s):
                label.set_class(self.state is s, f"-{s.value.lower()}")
        text = self.state.value if not self.reason or self.state is TradingState.ACTIVE else f"{self.state.value}: {self.reason}"
        label.update(text)
