"""F1: every key binding with its id (remappable in the config file's [keys] section)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "close", "Close", id="help.close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical { width: 80; max-width: 95%; height: 90%; padding: 0 1; }
    HelpScreen DataTable { height: 1fr; }
    """

    def __init__(self, rows: list[tuple[str, str, str, str]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("[b]Keys[/b]  (remap any id under \\[keys] in the config file)")
            table: DataTable[str] = DataTable(cursor_type="row", id="help-table")
            table.add_columns("Where", "Key", "Action", "Id")
            for row in self.rows:
                table.add_row(*row)
            yield table
            yield Static("[b]esc[/b] close")

    def action_close(self) -> None:
        self.dismiss(None)
