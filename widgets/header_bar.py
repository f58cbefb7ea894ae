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
        """The trading state as shown, with the first line of the reason unless trading is active."""
        reason = self.reason.strip().splitlines()[0] if self.reason.strip() else ""
        if not reason or self.state is TradingState.ACTIVE:
            return self.state.value
        return f"{self.state.value}: {reason}"

    def render(self) -> Content:
        def part(text: str, component: str | None = None) -> Content:
            content = Content(f" {text} ")
            return content.stylize(self.get_visual_style(component)) if component else content

        width = self.size.width
        mode = "live" if self._live else "paper"
        title = part("tradedesk", "header-bar--title")
        badge = part(mode.upper(), f"header-bar--{mode}")
        state = part(self.state_text, f"header-bar--{self.state.value.lower()}")
        clock = part(self.now.strftime("%Y-%m-%d %H:%M:%S UTC"), "header-bar--clock") if self.now else Content("")
        # What gives way on a narrow line: the account label first, then the clock; the state
        # (HALTED) and PAPER/LIVE always show. Widths are cells, so wide characters fit too.
        fixed = title.cell_length + badge.cell_length + state.cell_length
        if fixed + clock.cell_length > width:
            clock = Content("")
        room = max(0, width - fixed - clock.cell_length)
        account = part(f"{self._accounts} @ {self._venue}")
        if account.cell_length > room:
            account = account.truncate(room, ellipsis=room > 1)
        # the state takes the rest of the line, so HALTED is a bar across it
        rest = max(0, width - title.cell_length - account.cell_length - badge.cell_length - clock.cell_length)
        state = Content(f" {self.state_text} ").truncate(rest, pad=True).stylize(
            self.get_visual_style(f"header-bar--{self.state.value.lower()}"))
        return Content.assemble(title, account, badge, state, clock)
