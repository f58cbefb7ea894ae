"""Open positions with live PnL. Few rows, so a DataTable with keyed cell updates."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from core.models import Position
from widgets.keys_in_order import KeysInOrder
from widgets.messages import ClosePositionRequested, ProtectionDialogRequested

COLUMNS = ("Symbol", "Side", "Size", "Entry", "Mark", "uPnL", "rPnL", "Lev", "Liq")


def _num(value: Decimal | None, places: int | None = None) -> str:
    if value is None:
        return "-"
    if places is not None:
        return f"{value:,.{places}f}"
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _pnl(value: Decimal) -> Text:
    style = "green" if value > 0 else "red" if value < 0 else ""
    return Text(f"{value:,.2f}", style=style, justify="right")


class PositionsTable(KeysInOrder, DataTable):
    """Keys: x close the selected position at market (reduce-only, asks first); s / t move its
    stop-loss / take-profit (a dialog prefilled with the current price)."""

    BINDINGS = [
        Binding("x", "close_position", "Close position", id="positions.close"),
        Binding("s", "move_protection('stop_loss')", "Move SL", id="positions.move_sl"),
        Binding("t", "move_protection('take_profit')", "Move TP", id="positions.move_tp"),
    ]

    def __init__(self, id: str | None = "positions") -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self._positions: dict[str, Position] = {}

    def on_mount(self) -> None:
        for name in COLUMNS:  # a Text label: a str is parsed as markup, and that loads Rich's emoji table (~2 ms)
            self.add_column(Text(name), key=name)

    def _cells(self, p: Position) -> tuple[object, ...]:
        side = Text(p.side.value, style="green" if p.side.value == "long" else "red")
        return (p.symbol, side, _num(p.size), _num(p.entry_price), _num(p.mark_price),
                _pnl(p.unrealized_pnl), _pnl(p.realized_pnl), _num(p.leverage), _num(p.liquidation_price))

    def upsert(self, positions: list[Position]) -> None:
        """Keyed diff: update changed cells, add new rows, drop closed positions."""
        for p in positions:
            key = f"{p.account}:{p.symbol}"
            if p.size == 0:
                if key in self._positions:
                    del self._positions[key]
                    self.remove_row(key)
                continue
            cells = self._cells(p)
            if key not in self._positions:
                self.add_row(*cells, key=key)
            else:
                old = self._cells(self._positions[key])
                for name, new, before in zip(COLUMNS, cells, old, strict=True):
                    if str(new) != str(before) or getattr(new, "style", None) != getattr(before, "style", None):
                        self.update_cell(key, name, new)
            self._positions[key] = p

    @property
    def selected(self) -> Position | None:
        if not self._positions or self.cursor_row < 0:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:  # noqa: BLE001 - no row under the cursor
            return None
        return self._positions.get(str(key))

    def action_close_position(self) -> None:
        p = self.selected
        if p is not None:
            self.post_message(ClosePositionRequested(p.symbol))

    def action_move_protection(self, role: Literal["stop_loss", "take_profit"]) -> None:
        p = self.selected
        if p is not None:
            self.post_message(ProtectionDialogRequested(p, role))
