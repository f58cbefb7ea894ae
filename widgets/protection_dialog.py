"""Move the stop-loss or take-profit of an open position (s / t on the positions pane).

Prefilled with the current protective price, if the position has one. Enter sends the new price
(``ProtectionSubmitted``) and the dialog waits: what the core refuses (the wrong side of the last
price, a price finer than the tick, HALTED) comes back through ``show_error`` as the core words it,
and the dialog stays open to fix it. Escape changes nothing.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from core.models import Order, OrderType, Position, PositionSide, Side
from widgets.messages import ProtectionSubmitted
from widgets.keys_in_order import OrderedInput, SubmitOnEnter
from widgets.typed_numbers import positive_decimal

Role = Literal["stop_loss", "take_profit"]
_KINDS = {"stop_loss": (OrderType.STOP, OrderType.STOP_LIMIT), "take_profit": (OrderType.TAKE_PROFIT,)}


def _num(value: Decimal) -> str:
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def protective_orders(orders: list[Order], position: Position, role: Role) -> list[Order]:
    """The live orders that protect ``position`` in ``role`` (what update_stop_loss / update_take_profit
    replace), newest first. A trailing stop is not one of them: it moves by itself."""
    exit_side = Side.SELL if position.side is PositionSide.LONG else Side.BUY
    found = [o for o in orders if o.account == position.account and o.symbol == position.symbol and o.reduce_only
             and o.side is exit_side and o.type in _KINDS[role] and o.status.is_live and o.stop_price is not None
             and not (o.tag or "").startswith("trailing ")]
    return sorted(found, key=lambda o: (o.created_at, o.id), reverse=True)


class ProtectionScreen(SubmitOnEnter, ModalScreen[None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="protection.cancel")]
    DEFAULT_CSS = """
    ProtectionScreen { align: center middle; }
    ProtectionScreen > Vertical { width: 64; max-width: 95%; height: auto; padding: 1 2; }
    ProtectionScreen Horizontal { height: 1; margin-top: 1; }
    ProtectionScreen Label { width: 8; }
    ProtectionScreen Input, ProtectionScreen Input:focus { width: 1fr; height: 1; border: none; padding: 0; }
    ProtectionScreen #protection-error { height: auto; margin-top: 1; }
    """

    def __init__(self, position: Position, role: Role, current: list[Order], last: Decimal | None = None) -> None:
        super().__init__()
        self.position = position
        self.role = role
        self.current = current
        self.last = last
        self.pending = False  # sent to the core, no answer yet

    @property
    def label(self) -> str:
        return self.role.replace("_", "-")

    def compose(self) -> ComposeResult:
        p = self.position
        prices = sorted({o.stop_price for o in self.current if o.stop_price is not None})
        if not prices:
            now = f"no {self.label} yet: one is placed for the whole position"
        else:
            where = ", ".join(_num(x) for x in prices)
            now = f"now at {where} ({len(self.current)} order{'s' if len(self.current) > 1 else ''}, all move)"
        last = f"last {_num(self.last)}" if self.last is not None else "no last price"
        with Vertical(classes="dialog"):
            yield Static(f"[b]Move {self.label}[/b]  {p.symbol} {p.side.value} {_num(p.size)} ({p.account})")
            yield Static(f"{last}; {now}", id="protection-now")
            with Horizontal():
                yield Label("Price")
                first = self.current[0].stop_price if self.current else None
                # selected on focus (as in the modify dialog): typing replaces it, arrows edit it
                yield OrderedInput(_num(first) if first is not None else "", placeholder="trigger price", id="protection-price",
                            validate_on=())
            yield Static("", id="protection-error")
            yield Static("[b]enter[/b] apply   [b]esc[/b] cancel")

    def on_mount(self) -> None:
        self.query_one("#protection-price", Input).focus()

    def submit(self) -> bool:
        if self.pending:
            return False
        price, problem = positive_decimal(self.query_one("#protection-price", Input).value)
        if price is None:
            return self._refuse(f"Price: {problem or 'required'}")
        if self.current and all(o.stop_price == price for o in self.current):
            return self._refuse(f"Price: the {self.label} is already at {_num(price)}")
        self.pending = True
        self.query_one("#protection-error", Static).update(Text("moving…", style="dim"))
        p = self.position
        self.post_message(ProtectionSubmitted(p.account, p.symbol, self.role, price))
        return True

    def _refuse(self, text: str) -> bool:
        self.query_one("#protection-error", Static).update(Text(text, style="red"))
        return False

    def show_error(self, text: str) -> None:
        """The core refused: say why, as it says it, and let the trader fix the price."""
        self.pending = False
        self._refuse(text)

    def done(self, text: str) -> None:
        """Moved: close, or say so when another screen (a halt report) came on top meanwhile."""
        if self.app.screen is self:
            self.dismiss(None)
        else:
            self.query_one("#protection-error", Static).update(Text(f"{text}; esc closes", style="green"))

    @property
    def error_text(self) -> str:
        return str(self.query_one("#protection-error", Static).content)

    def action_cancel(self) -> None:
        self.dismiss(None)
