"""The top line: account and venue, PAPER/LIVE (impossible to miss), trading state, clock.

One widget that renders the whole line (five Statics cost ~7 ms of the cold start); each part is
styled by a component class in the app's sheet.
"""

from __future__ import annotations

from datetime import datetime

from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from core.models import TradingState


class HeaderBar(Widget):
    COMPONENT_CLASSES = {
        "header-bar--title", "header-bar--paper", "header-bar--live", "header-bar--clock",
        "header-bar--active", "header-bar--reducing", "header-bar--halted",
    }
    DEFAULT_CSS = """
    HeaderBar { height: 1; }
    """

    state: reactive[TradingState] = reactive(TradingState.ACTIVE)
    reason: reactive[str] = reactive("")
    now: reactive[datetime | None] = reactive(None)

    def __init__(self, *, accounts: str, venue: str, live: bool, id: str | None = None) -> None:
        super().__init__(id=id)
        self._accounts = accounts
        self._venue = venue
        self._live = live

    @property
    def state_text(self) -> str:
        """The trading state as shown, with the reason unless trading is active."""
        if not self.reason or self.state is TradingState.ACTIVE:
            return self.state.value
        return f"{self.state.value}: {self.reason}"

    def render(self) -> Content:
        def part(text: str, component: str | None = None, width: int | None = None) -> Content:
            text = f" {text} " if width is None else f" {text} ".ljust(width)[:width]
            return Content.styled(text, self.get_visual_style(component)) if component else Content(text)

        mode = "live" if self._live else "paper"
        left = Content.assemble(
            part("tradedesk", "header-bar--title"),
            part(f"{self._accounts} @ {self._venue}"),
            part(mode.upper(), f"header-bar--{mode}"),
        )
        clock = part(self.now.strftime("%Y-%m-%d %H:%M:%S UTC"), "header-bar--clock") if self.now else Content("")
        # the state takes the rest of the line, so HALTED is a bar across it
        room = max(0, self.size.width - left.cell_length - clock.cell_length)
        state = part(self.state_text, f"header-bar--{self.state.value.lower()}", room)
        return Content.assemble(left, state, clock)
