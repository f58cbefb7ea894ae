"""F1: every key binding with its id (remappable in the config file's [keys] section), and how
the algorithm keys act."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static


# Named by action, not by key: every key can be remapped.
ALGOS = ("Algorithms (Algo starts one) are parent rows in the orders pane, their child orders folded under "
         "them: on a parent row Expand algo shows the children, Pause/resume algo and Cancel act on the "
         "whole algorithm, and the HALT stops every algorithm.")
CONTINGENT = ("Order entry: SL/TP on a market or limit order make a bracket (legs follow the fills). Type oco: "
              "a limit at Price, a stop at Stop, one cancels the other. Type tr: trailing stop, Trail 100 or 0.5%, "
              "Act optional. Move SL / Move TP replace a position's protective orders.")


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
            yield Static(ALGOS, id="help-algos")
            yield Static(CONTINGENT, id="help-contingent")
            yield Static("[b]esc[/b] close")

    def action_close(self) -> None:
        self.dismiss(None)
