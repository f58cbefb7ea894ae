"""Change a live order's price and/or amount. Enter applies, escape cancels."""

from __future__ import annotations

from decimal import Decimal

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from core.models import Order
from widgets.keys_in_order import OrderedInput, SubmitOnEnter
from widgets.typed_numbers import positive_decimal


class ModifyScreen(SubmitOnEnter, ModalScreen[tuple[Decimal | None, Decimal | None] | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="modify.cancel")]
    DEFAULT_CSS = """
    ModifyScreen { align: center middle; }
    ModifyScreen > Vertical { width: 56; max-width: 90%; height: auto; padding: 1 2; }
    ModifyScreen Grid { grid-size: 2; grid-columns: 8 1fr; grid-rows: 1; height: auto; }
    ModifyScreen Input, ModifyScreen Input:focus { height: 1; border: none; padding: 0; }
    """

    def __init__(self, order: Order) -> None:
        super().__init__()
        self.order = order

    def compose(self) -> ComposeResult:
        o = self.order
        with Vertical(classes="dialog"):
            yield Static(f"Modify {o.id}: {o.side.value} {o.amount} {o.symbol} {o.type.value}")
            with Grid():
                yield Label("Price")
                yield OrderedInput(f"{o.price:f}" if o.price is not None else "", id="modify-price", disabled=o.price is None)
                yield Label("Amount")
                yield OrderedInput(f"{o.amount:f}", id="modify-amount")
            yield Static("", id="modify-error")
            yield Static("[b]enter[/b] apply   [b]esc[/b] cancel")

    def on_mount(self) -> None:
        target = "#modify-price" if self.order.price is not None else "#modify-amount"
        self.query_one(target, Input).focus()

    def _read(self, name: str, selector: str, current: Decimal | None) -> tuple[Decimal | None, str | None]:
        value, problem = positive_decimal(self.query_one(selector, Input).value)
        if problem:
            return None, f"{name}: {problem}"
        return (None if value == current else value), None

    def submit(self) -> None:
        """Enter in either field (see SubmitOnEnter): the fields as they are now."""
        price, problem = self._read("Price", "#modify-price", self.order.price)
        amount, amount_problem = self._read("Amount", "#modify-amount", self.order.amount)
        if problem or amount_problem:
            self.query_one("#modify-error", Static).update(f"[red]{problem or amount_problem}[/red]")
            return
        if price is None and amount is None:
            self.query_one("#modify-error", Static).update("[yellow]Nothing changed[/yellow]")
            return
        self.dismiss((price, amount))

    def action_cancel(self) -> None:
        self.dismiss(None)
