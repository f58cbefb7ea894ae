"""Order entry: keyboard-first form with a live preview (notional, fee estimate, risk verdict).

Enter submits. A malformed field is marked and explained and nothing is sent; a well-formed
order goes to the core even if risk would refuse it, so the refusal is journaled and logged.
The widget never calls a venue: the risk verdict comes from a checker the console passes in.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from pydantic import ValidationError
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.suggester import SuggestFromList
from textual.widgets import Checkbox, Input, Label, Static

from core.models import OrderRequest, OrderType, Side, TimeInForce
from widgets.messages import OrderSubmitted

Checker = Callable[[OrderRequest], list[str]]

_SIDES = {"b": "buy", "buy": "buy", "s": "sell", "sell": "sell"}
_TYPES = {"m": "market", "l": "limit", "s": "stop", "sl": "stop_limit", "tp": "take_profit"}
_TIFS = {"gtc": "GTC", "ioc": "IOC", "fok": "FOK", "po": "PO"}

# field id -> (label, placeholder)
FIELDS: dict[str, tuple[str, str]] = {
    "symbol": ("Symbol", "BASE/QUOTE"),
    "side": ("Side", "b/s"),
    "type": ("Type", "m/l/s/sl/tp"),
    "tif": ("TIF", "gtc/ioc/fok"),
    "amount": ("Amount", "qty"),
    "leverage": ("Lev", "1"),
    "price": ("Price", "limit px"),
    "stop_price": ("Stop", "trigger"),
    "take_profit": ("TP", "optional"),
    "stop_loss": ("SL", "optional"),
}


class OrderEntry(Vertical):
    BINDINGS = [
        Binding("down", "app.focus_next", "Next field", show=False, id="entry.next"),
        Binding("up", "app.focus_previous", "Previous field", show=False, id="entry.previous"),
    ]
    DEFAULT_CSS = """
    OrderEntry { height: auto; }
    OrderEntry Grid { grid-size: 4; grid-columns: 7 1fr 5 1fr; grid-rows: 1; height: auto; grid-gutter: 0 1; }
    OrderEntry Input, OrderEntry Input:focus, OrderEntry Input.-invalid, OrderEntry Input.-invalid:focus {
        height: 1; border: none; padding: 0;
    }
    OrderEntry Label { height: 1; }
    OrderEntry Horizontal { height: 1; }
    OrderEntry Checkbox { height: 1; border: none; padding: 0; margin-right: 2; }
    OrderEntry #entry-preview, OrderEntry #entry-verdict, OrderEntry #entry-errors { height: auto; }
    """

    def __init__(
        self,
        *,
        checker: Checker,
        symbols: list[str],
        prices: Callable[[], dict[str, Decimal]],
        taker_fee: Decimal = Decimal("0.0004"),
        maker_fee: Decimal = Decimal("0.0002"),
        accounts: list[str] | None = None,
        id: str | None = "order-entry",
    ) -> None:
        super().__init__(id=id)
        self._accounts = accounts or []
        self._checker = checker
        self._symbols = symbols
        self._prices = prices
        self._taker = taker_fee
        self._maker = maker_fee
        self.errors: dict[str, str] = {}
        self.verdict: list[str] = []
        self._touched: set[str] = set()  # errors show for fields the trader edited, or after Enter

    def compose(self) -> ComposeResult:
        suggest = {
            "symbol": SuggestFromList(self._symbols, case_sensitive=False),
            "side": SuggestFromList(["buy", "sell"], case_sensitive=False),
            "type": SuggestFromList([t.value for t in OrderType], case_sensitive=False),
            "tif": SuggestFromList([t.value for t in TimeInForce], case_sensitive=False),
        }
        defaults = {"symbol": self._symbols[0] if self._symbols else "", "side": "buy", "type": "limit",
                    "tif": "GTC", "leverage": "1"}
        with Grid():
            for field, (label, placeholder) in FIELDS.items():
                yield Label(label, id=f"label-{field}")
                # validate_on=(): this form marks fields itself; Input's own checks would unmark them
                yield Input(defaults.get(field, ""), placeholder=placeholder, id=f"in-{field}",
                            suggester=suggest.get(field), select_on_focus=False, validate_on=())
            if len(self._accounts) > 1:  # several accounts: say which one the order goes to
                yield Label("Acct", id="label-account")
                yield Input(self._accounts[0], id="in-account", select_on_focus=False, validate_on=(),
                            suggester=SuggestFromList(self._accounts, case_sensitive=False))
                yield Label("")
                yield Label("")
        with Horizontal():
            yield Checkbox("post-only", id="in-post_only", compact=True)
            yield Checkbox("reduce-only", id="in-reduce_only", compact=True)
        yield Static("", id="entry-preview")
        yield Static("", id="entry-verdict")
        yield Static("", id="entry-errors")

    # -- reading the form ---------------------------------------------------------------------

    def value(self, field: str) -> str:
        return self.query_one(f"#in-{field}", Input).value.strip()

    def set_value(self, field: str, value: str) -> None:
        self.query_one(f"#in-{field}", Input).value = value

    def _decimal(self, field: str) -> Decimal | None:
        raw = self.value(field).replace(",", "").replace("_", "")
        if not raw:
            return None
        try:
            value = Decimal(raw)
        except Exception:  # noqa: BLE001 - any parse failure is the same message
            self.errors[field] = f"not a number: {raw!r}"
            return None
        if not value.is_finite() or value <= 0:
            self.errors[field] = f"must be > 0, got {raw}"
            return None
        return value

    def build(self) -> tuple[OrderRequest | None, Decimal | None, Decimal | None]:
        """Parse the form: (request, stop_loss, take_profit); problems land in ``errors``."""
        self.errors = {}
        side = _SIDES.get(self.value("side").lower())
        if side is None:
            self.errors["side"] = "buy or sell"
        kind = self.value("type").lower()
        kind = _TYPES.get(kind, kind)
        if kind not in {t.value for t in OrderType}:
            self.errors["type"] = "market, limit, stop, stop_limit or take_profit"
        tif = self.value("tif")
        tif = _TIFS.get(tif.lower(), tif.upper())
        if self.query_one("#in-post_only", Checkbox).value:
            tif = "PO"
        amount = self._decimal("amount")
        if amount is None and "amount" not in self.errors:
            self.errors["amount"] = "required"
        price, stop = self._decimal("price"), self._decimal("stop_price")
        tp, sl = self._decimal("take_profit"), self._decimal("stop_loss")
        leverage = self._decimal("leverage") or Decimal(1)
        account = None
        if len(self._accounts) > 1:
            account = self.query_one("#in-account", Input).value.strip()
            if account not in self._accounts:
                self.errors["account"] = f"one of {', '.join(self._accounts)}"
        if self.errors:
            return None, sl, tp
        try:
            request = OrderRequest(
                symbol=self.value("symbol"), side=side, type=kind, amount=amount, price=price, stop_price=stop,
                time_in_force=tif, reduce_only=self.query_one("#in-reduce_only", Checkbox).value, leverage=leverage,
                account=account,
            )
        except ValidationError as exc:
            for err in exc.errors():
                loc = str(err["loc"][0]) if err["loc"] else ""
                msg = str(err["msg"]).removeprefix("Value error, ")
                for problem in msg.split("; "):
                    field = loc or next((f for f in ("stop_price", "price", "amount", "symbol", "leverage") if f in problem), "type")
                    field = {"time_in_force": "tif"}.get(field, field)
                    self.errors.setdefault(field, problem)
            return None, sl, tp
        if tp is not None or sl is not None:
            from core.risk import protective_problems

            entry = price or stop or self._prices().get(request.symbol)
            if entry is not None:
                for problem in protective_problems(request.side, entry, sl, tp):
                    self.errors.setdefault("stop_loss" if problem.startswith("stop-loss") else "take_profit", problem)
            if self.errors:
                return None, sl, tp
        return request, sl, tp

    # -- live preview ------------------------------------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id and event.input.has_focus:
            self._touched.add(event.input.id.removeprefix("in-"))
        self.refresh_preview()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self.refresh_preview()

    def refresh_preview(self) -> None:
        request, _, _ = self.build()
        self._show_errors()
        preview = self.query_one("#entry-preview", Static)
        verdict = self.query_one("#entry-verdict", Static)
        if request is None:
            preview.update("")
            verdict.update("")
            self.verdict = []
            return
        ref = request.price or request.stop_price or self._prices().get(request.symbol)
        if ref is not None:
            notional = request.amount * ref
            rate = self._maker if request.time_in_force is TimeInForce.PO else self._taker
            preview.update(f"Notional {notional:,.2f}  fee ~{notional * rate:,.2f}\nMargin {notional / request.leverage:,.2f}")
        else:
            preview.update("")
        self.verdict = self._checker(request)
        if self.verdict:
            verdict.update(Text("✗ " + "; ".join(self.verdict), style="bold red"))
        else:
            verdict.update(Text("✓ passes risk checks", style="green"))

    def _show_errors(self, all_fields: bool = False) -> None:
        if all_fields:
            self._touched.update(self.errors)
        shown = {f: p for f, p in self.errors.items() if f in self._touched}
        for field in FIELDS:
            bad = field in shown
            for widget in (self.query_one(f"#in-{field}", Input), self.query_one(f"#label-{field}", Label)):
                if widget.has_class("-invalid") != bad:  # a class change restyles: only when it changes
                    widget.set_class(bad, "-invalid")
        text = Text()
        for field, problem in shown.items():
            if text:
                text.append("\n")
            text.append(f"{FIELDS.get(field, (field.capitalize(),))[0]}: {problem}", style="red")
        self.query_one("#entry-errors", Static).update(text)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.submit()

    def submit(self) -> bool:
        request, sl, tp = self.build()
        self._show_errors(all_fields=True)
        if request is None:
            first = next(iter(self.errors), None)
            if first in FIELDS:
                self.query_one(f"#in-{first}", Input).focus()
            return False
        self.post_message(OrderSubmitted(request, stop_loss=sl, take_profit=tp))
        return True

    def set_symbols(self, symbols: list[str]) -> None:
        """The venue's markets, once known (a real exchange lists them only after connecting)."""
        self._symbols = symbols
        field = self.query_one("#in-symbol", Input)
        field.suggester = SuggestFromList(symbols, case_sensitive=False)
        if not field.value and symbols:
            field.value = symbols[0]

    def prefill(self, side: Side | None = None, symbol: str | None = None) -> None:
        if side is not None:
            self.set_value("side", side.value)
        if symbol is not None:
            self.set_value("symbol", symbol)
