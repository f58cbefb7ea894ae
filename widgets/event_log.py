"""The event log: refusals, fills, breaker trips, halts and errors, each with its time."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.widgets import RichLog

_LEVEL_STYLE = {"info": "", "warning": "bold yellow", "error": "bold red", "fill": "green"}


class EventLog(RichLog):
    DEFAULT_CSS = """
    EventLog { height: 1fr; }
    """

    def __init__(self, id: str | None = "event-log") -> None:
        super().__init__(id=id, max_lines=2000, wrap=True, markup=False, highlight=False)

    def add(self, at: datetime, level: str, text: str) -> None:
        line = Text(at.strftime("%H:%M:%S "), style="dim")
        line.append(text, style=_LEVEL_STYLE.get(level, ""))
        self.write(line)
