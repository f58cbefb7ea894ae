"""Shows the halt's report: what was cancelled, what failed, what is still open."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from core.halt import HaltReport


def report_text(report: HaltReport) -> Text:
    ok = report.clean
    text = Text()
    text.append("HALTED" if ok else "HALT INCOMPLETE", style="bold white on red")
    text.append(f"  {report.reason}\n", style="bold")
    text.append(f"{report.seconds * 1000:.0f} ms, {'book empty, verified at the venue' if ok else 'see below'}\n\n")
    for a in report.accounts:
        text.append(f"{a.account} @ {a.venue}\n", style="bold")
        text.append(f"  cancelled: {len(a.cancelled)}\n")
        for oid, why in a.failed.items():
            text.append(f"  failed {oid}: {why}\n", style="red")
        if a.remaining:
            text.append(f"  STILL OPEN: {', '.join(a.remaining)}\n", style="bold red")
        if report.flatten:
            text.append(f"  positions closed: {', '.join(a.positions_closed) or 'none'}\n")
            if a.positions_left:
                text.append(f"  POSITIONS LEFT: {', '.join(a.positions_left)}\n", style="bold red")
        if a.error:
            text.append(f"  {a.error}\n", style="bold red")
        text.append(f"  verified: {'yes' if a.verified else 'NO'}\n", style="" if a.verified else "bold red")
    return text


class HaltReportScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,enter,q", "close", "Close", id="halt_report.close")]
    DEFAULT_CSS = """
    HaltReportScreen { align: center middle; }
    HaltReportScreen > Vertical { width: 72; max-width: 95%; height: auto; max-height: 90%; padding: 1 2; }
    HaltReportScreen VerticalScroll { height: auto; max-height: 24; }
    """

    def __init__(self, report: HaltReport) -> None:
        super().__init__()
        self.report = report

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -halt"):
            with VerticalScroll():
                yield Static(report_text(self.report), id="halt-report-text")
            yield Static("[b]esc[/b] close", id="halt-report-keys")

    def action_close(self) -> None:
        self.dismiss(None)
