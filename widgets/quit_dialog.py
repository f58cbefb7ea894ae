"""Quitting with orders open: halt first, leave them working, or stay."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static


class QuitScreen(ModalScreen[str]):
    """Dismisses with "halt" (halt, then quit), "leave" (quit, orders stay) or "stay"."""

    BINDINGS = [
        Binding("h", "answer('halt')", "Halt and quit", id="quit.halt"),
        Binding("l", "answer('leave')", "Quit, leave orders", id="quit.leave"),
        Binding("escape,n", "answer('stay')", "Stay", id="quit.stay"),
    ]
    DEFAULT_CSS = """
    QuitScreen { align: center middle; }
    QuitScreen > Vertical { width: 64; max-width: 95%; height: auto; padding: 1 2; }
    """

    def __init__(self, open_orders: int) -> None:
        super().__init__()
        self.open_orders = open_orders

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"{self.open_orders} order(s) are still open at the venue.")
            yield Static("[b]h[/b] halt (cancel them all), then quit\n[b]l[/b] quit and leave them working\n[b]esc[/b] stay")

    def action_answer(self, answer: str) -> None:
        self.dismiss(answer)
