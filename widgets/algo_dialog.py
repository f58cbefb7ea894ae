"""F6: start an execution algorithm — TWAP, iceberg or limit-then-market.

Kind, symbol, side and amount, then the kind's own parameters. Enter starts it: a malformed
field is marked and named and nothing is sent; a well-formed request goes to the core through
the app (``AlgoStartRequested``) and the dialog waits. What the core refuses (lot size, venue
minimums, HALTED) comes back through ``show_error`` as the core words it, and the dialog stays
open to fix it; once started, the app dismisses it with the parent order. Escape starts nothing.
"""

from __future__ import annotations

from decimal import Decimal

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, Select, Static

from core.algos_model import ParentOrder
from widgets.messages import AlgoStartRequested
from widgets.keys_in_order import OrderedInput, SubmitOnEnter, move_focus
from widgets.typed_numbers import positive_decimal

KINDS = {"twap": "TWAP", "iceberg": "Iceberg", "limit_then_market": "Limit then market"}
ABOUT = {
    "twap": "Splits the amount into slices, one every duration / slices seconds (the first at once).",
    "iceberg": "Shows only the visible amount at the price until all is filled; "
               "refresh replaces a child still unfilled after that many seconds.",
    "limit_then_market": "Rests a limit at the price for the timeout, then takes what is left at market.",
}
# field -> (label, placeholder)
COMMON: dict[str, tuple[str, str]] = {
    "symbol": ("Symbol", "BASE/QUOTE"),
    "side": ("Side", "b/s"),
    "amount": ("Amount", "total qty"),
}
PARAMS: dict[str, dict[str, tuple[str, str]]] = {
    "twap": {
        "duration": ("Duration", "seconds"),
        "slices": ("Slices", "how many children"),
        "child_type": ("Child type", "market/limit"),
        "price_limit": ("Price limit", "optional: skip a slice beyond it"),
    },
    "iceberg": {
        "visible": ("Visible", "qty shown at a time"),
        "price": ("Price", "limit px"),
        "refresh": ("Refresh", "optional: seconds"),
    },
    "limit_then_market": {
        "price": ("Price", "limit px"),
        "timeout": ("Timeout", "seconds, then market"),
    },
}
_SIDES = {"b": "buy", "buy": "buy", "s": "sell", "sell": "sell"}
_CHILD_TYPES = {"m": "market", "market": "market", "l": "limit", "limit": "limit"}
_DEFAULTS = {"child_type": "market"}


def _input_id(kind: str | None, field: str) -> str:
    return f"algo-{field}" if kind is None else f"algo-{kind}-{field}"


class AlgoScreen(SubmitOnEnter, ModalScreen[ParentOrder | None]):
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="algo.cancel"),
        # fields in reading order, as in the order entry; priority, so the focus moves before the
        # keys typed behind are routed (widgets.keys_in_order). The kind list keeps its own up/down.
        Binding("down", "next_field", "Next field", show=False, priority=True, id="algo.next"),
        Binding("up", "previous_field", "Previous field", show=False, priority=True, id="algo.previous"),
    ]
    DEFAULT_CSS = """
    AlgoScreen { align: center middle; }
    AlgoScreen > Vertical { width: 72; max-width: 95%; height: auto; max-height: 100%; overflow-y: auto; padding: 1 2; }
    AlgoScreen Grid { grid-size: 2; grid-columns: 12 1fr; grid-rows: 1; height: auto; }
    AlgoScreen Input, AlgoScreen Input:focus, AlgoScreen Input.-invalid, AlgoScreen Input.-invalid:focus {
        height: 1; border: none; padding: 0;
    }
    AlgoScreen Select { margin-bottom: 1; }
    AlgoScreen #algo-about, AlgoScreen #algo-error { height: auto; margin-top: 1; }
    """

    def __init__(self, *, symbols: list[str], symbol: str = "", side: str = "buy") -> None:
        super().__init__()
        self.symbols = symbols
        self.defaults = {"symbol": symbol or (symbols[0] if symbols else ""), "side": side}
        self.kind = "twap"
        self.errors: dict[str, str] = {}  # field -> problem, for the fields of the chosen kind
        self.pending = False  # sent to the core, no answer yet

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("[b]Start an algorithm[/b]")
            yield Select([(label, kind) for kind, label in KINDS.items()], value=self.kind, allow_blank=False,
                         id="algo-kind", compact=True)
            with Grid():
                for field, (label, placeholder) in COMMON.items():
                    yield from self._field(None, field, label, placeholder)
            for kind, fields in PARAMS.items():
                with Grid(id=f"algo-params-{kind}", classes="algo-params") as grid:
                    grid.display = kind == self.kind
                    for field, (label, placeholder) in fields.items():
                        yield from self._field(kind, field, label, placeholder)
            yield Static(ABOUT[self.kind], id="algo-about")
            yield Static("", id="algo-error")
            yield Static("[b]enter[/b] start   [b]esc[/b] cancel")

    def _field(self, kind: str | None, field: str, label: str, placeholder: str) -> ComposeResult:
        suggest = {"symbol": self.symbols, "side": ["buy", "sell"], "child_type": ["market", "limit"]}.get(field)
        yield Label(label, id=f"label-{_input_id(kind, field)}")
        value = {**_DEFAULTS, **self.defaults}.get(field, "")
        # validate_on=(): this dialog marks fields itself; entering a field selects its text (as the entry)
        yield OrderedInput(value, placeholder=placeholder, id=_input_id(kind, field), validate_on=(),
                    suggester=SuggestFromList(suggest, case_sensitive=False) if suggest else None)

    def on_mount(self) -> None:
        self.query_one(f"#{_input_id(None, 'amount')}", Input).focus()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.value not in PARAMS or event.value == self.kind:
            return
        self.kind = str(event.value)
        for kind in PARAMS:
            self.query_one(f"#algo-params-{kind}").display = kind == self.kind
        self.query_one("#algo-about", Static).update(ABOUT[self.kind])
        self.errors = {}
        self._show_errors()

    # -- reading the form ------------------------------------------------------------------------

    def _raw(self, field: str, kind: str | None = None) -> str:
        return self.query_one(f"#{_input_id(kind, field)}", Input).value.strip()

    def _number(self, field: str, kind: str | None = None, required: bool = True) -> Decimal | None:
        value, problem = positive_decimal(self._raw(field, kind))
        if problem or (value is None and required):
            self.errors[field] = problem or "required"
        return value

    def _seconds(self, field: str, required: bool = True) -> float | None:
        value = self._number(field, self.kind, required)
        return float(value) if value is not None else None

    def build(self) -> AlgoStartRequested | None:
        """Parse the form into a start request; problems land in ``errors`` (field -> text)."""
        self.errors = {}
        kind = self.kind
        symbol = self._raw("symbol").upper()
        if not symbol:
            self.errors["symbol"] = "required"
        elif self.symbols and symbol not in self.symbols:
            self.errors["symbol"] = f"{symbol} is not listed on this venue"
        side = _SIDES.get(self._raw("side").lower())
        if side is None:
            self.errors["side"] = f"buy or sell, got {self._raw('side')!r}"
        amount = self._number("amount")
        params: dict[str, object] = {}
        if kind == "twap":
            params["duration"] = self._seconds("duration")
            raw = self._raw("slices", kind)
            if not raw.isdigit() or int(raw) < 1:
                self.errors["slices"] = "required" if not raw else f"a whole number >= 1, got {raw!r}"
            else:
                params["slices"] = int(raw)
            child_type = _CHILD_TYPES.get(self._raw("child_type", kind).lower())
            if child_type is None:
                self.errors["child_type"] = f"market or limit, got {self._raw('child_type', kind)!r}"
            params["child_type"] = child_type
            params["price_limit"] = self._number("price_limit", kind, required=False)
        elif kind == "iceberg":
            params["visible"] = self._number("visible", kind)
            params["price"] = self._number("price", kind)
            params["refresh"] = self._seconds("refresh", required=False)
        else:
            params["price"] = self._number("price", kind)
            params["timeout"] = self._seconds("timeout")
        if self.errors or side is None or amount is None:
            return None
        return AlgoStartRequested(kind, symbol, side, amount, params)

    # -- showing problems ------------------------------------------------------------------------

    def _label(self, field: str) -> str:
        return (COMMON.get(field) or PARAMS[self.kind][field])[0]

    def _show_errors(self) -> None:
        fields = [(None, f) for f in COMMON] + [(kind, f) for kind, params in PARAMS.items() for f in params]
        for kind, field in fields:  # every kind's: a switched-away kind keeps no stale marks
            bad = field in self.errors and kind in (None, self.kind)
            for selector in (f"#{_input_id(kind, field)}", f"#label-{_input_id(kind, field)}"):
                self.query_one(selector).set_class(bad, "-invalid")
        text = Text()
        for field, problem in self.errors.items():
            if text:
                text.append("\n")
            text.append(f"{self._label(field)}: {problem}")
        self.query_one("#algo-error", Static).update(text)

    def show_error(self, text: str) -> None:
        """The core refused the request: say why, as it says it, and let the trader fix it."""
        self.pending = False
        self.query_one("#algo-error", Static).update(Text(text))

    def started(self, parent: ParentOrder) -> None:
        """Started while another screen was on top: say so; enter does not start it twice."""
        self.pending = True
        self.query_one("#algo-error", Static).update(Text(f"{parent.kind.value} {parent.id} started; esc closes",
                                                          style="green"))

    @property
    def error_text(self) -> str:
        return str(self.query_one("#algo-error", Static).content)

    # -- acting ----------------------------------------------------------------------------------

    def submit(self) -> bool:
        if self.pending:
            return False
        request = self.build()
        self._show_errors()
        if request is None:
            first = next(iter(self.errors), None)
            if first is not None:
                kind = None if first in COMMON else self.kind
                self.query_one(f"#{_input_id(kind, first)}", Input).focus()
            return False
        self.pending = True
        self.query_one("#algo-error", Static).update(Text("starting…", style="dim"))
        self.post_message(request)
        return True

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("next_field", "previous_field"):
            # in the kind list (or its open options) up/down are the list's own: the key goes on to it
            return not any(isinstance(node, Select) for node in (self.focused, *(self.focused.ancestors
                                                                                  if self.focused else ())))
        return super().check_action(action, parameters)

    def action_next_field(self) -> None:
        move_focus(self, +1)

    def action_previous_field(self) -> None:
        move_focus(self, -1)

    def action_cancel(self) -> None:
        self.dismiss(None)
