"""Order entry: keyboard-first form with a live preview (notional, fee estimate, risk verdict).

Enter submits. A malformed field is marked and explained and nothing is sent; a well-formed
order goes to the core even if risk would refuse it, so the refusal is journaled and logged.
The widget never calls a venue: the risk verdict comes from a checker the console passes in.

Contingent orders come from the same form, so symbol, side, amount, preview and verdict work
the same for them: a market or limit order with SL and/or TP is a bracket (legs follow the
entry's fills); type "oco" pairs a limit at Price with a stop at Stop; type "trailing" (tr)
shows its own row (Trail: an amount or a percent, Act: an optional activation price). The
preview's first line says what Enter will place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from decimal import Decimal

from pydantic import ValidationError
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.css.query import NoMatches
from textual.suggester import SuggestFromList
from textual.widgets import Checkbox, Input, Label, Static

from core.models import Market, OrderRequest, OrderType, Side, TimeInForce
from core.risk import protective_problems
from widgets.in_place import update_text
from widgets.messages import ContingentSubmitted, OrderSubmitted
from widgets.keys_in_order import OrderedCheckbox, OrderedInput, SubmitOnEnter
from widgets.typed_numbers import positive_decimal

Checker = Callable[[OrderRequest], list[str]]
Markets = Callable[[str | None], Mapping[str, Market]]  # an account's markets (None: the default account)

_SIDES = {"b": "buy", "buy": "buy", "s": "sell", "sell": "sell"}
_TYPES = {"m": "market", "l": "limit", "s": "stop", "sl": "stop_limit", "tp": "take_profit", "tr": "trailing",
          "trail": "trailing"}
CONTINGENT_TYPES = ("oco", "trailing")
_TIFS = {"gtc": "GTC", "ioc": "IOC", "fok": "FOK", "po": "PO"}

# field id -> (label, placeholder)
FIELDS: dict[str, tuple[str, str]] = {
    "symbol": ("Symbol", "BASE/QUOTE"),
    "side": ("Side", "b/s"),
    "type": ("Type", "m/l/s/sl/tp/oco/tr"),
    "tif": ("TIF", "gtc/ioc/fok/po"),
    "amount": ("Amount", "qty"),
    "leverage": ("Lev", "1"),
    "price": ("Price", "limit px"),
    "stop_price": ("Stop", "trigger"),
    "take_profit": ("TP", "optional"),
    "stop_loss": ("SL", "optional"),
    "trail": ("Trail", "100 or 0.5%"),
    "activation": ("Act", "optional"),
}
TRAILING_FIELDS = ("trail", "activation")  # their row shows only for a trailing stop
# how an error names a field when its label is an abbreviation
_NAMES = {"activation": "Act (activation)", "reduce_only": "Reduce-only"}


def _fmt(value: Decimal) -> str:
    return f"{value:f}"


@dataclass(frozen=True)
class Draft:
    """A well-formed form: what Enter posts, and what the preview shows for it."""

    message: OrderSubmitted | ContingentSubmitted
    checks: tuple[OrderRequest, ...]  # the orders the core will risk-check; the first one is priced
    summary: str = ""  # for contingent orders: what Enter places, in one line


class OrderEntry(SubmitOnEnter, Vertical):
    # Priority, as Tab (TradedeskApp): the focus moves as the app reads the key, before it routes
    # the keys typed behind it; a widget's binding runs only later (see widgets.keys_in_order).
    BINDINGS = [
        Binding("down", "app.focus_next", "Next field", show=False, priority=True, id="entry.next"),
        Binding("up", "app.focus_previous", "Previous field", show=False, priority=True, id="entry.previous"),
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
        markets: Markets | None = None,
        accounts: list[str] | None = None,
        id: str | None = "order-entry",
    ) -> None:
        super().__init__(id=id)
        self._accounts = accounts or []
        self._checker = checker
        self._symbols = symbols
        self._prices = prices
        self._markets = markets
        self.errors: dict[str, str] = {}
        self.verdict: list[str] = []
        self.summary = ""  # what Enter places, for a bracket, OCO or trailing stop
        self._touched: set[str] = set()  # errors show for fields the trader edited, or after Enter

    def compose(self) -> ComposeResult:
        suggest = {
            "symbol": SuggestFromList(self._symbols, case_sensitive=False),
            "side": SuggestFromList(["buy", "sell"], case_sensitive=False),
            "type": SuggestFromList([*(t.value for t in OrderType), *CONTINGENT_TYPES], case_sensitive=False),
            "tif": SuggestFromList([t.value for t in TimeInForce], case_sensitive=False),
        }
        defaults = {"symbol": self._symbols[0] if self._symbols else "", "side": "buy", "type": "limit",
                    "tif": "GTC", "leverage": "1"}
        with Grid():
            for field, (label, placeholder) in FIELDS.items():
                classes = "-trailing-only" if field in TRAILING_FIELDS else ""
                # validate_on=(): this form marks fields itself; Input's own checks would unmark them.
                # Entering a field selects its text, as on an order ticket: "s" in Side replaces
                # "buy", a new amount replaces the last one (typed after it, both were invalid).
                cells = (Label(label, id=f"label-{field}", classes=classes),
                         OrderedInput(defaults.get(field, ""), placeholder=placeholder, id=f"in-{field}",
                               suggester=suggest.get(field), validate_on=(), classes=classes))
                for cell in cells:
                    cell.display = not classes  # the trailing row shows once the type is trailing
                    yield cell
            if len(self._accounts) > 1:  # several accounts: say which one the order goes to
                yield Label("Acct", id="label-account")
                yield OrderedInput(self._accounts[0], id="in-account", validate_on=(),
                            suggester=SuggestFromList(self._accounts, case_sensitive=False))
                yield Label("")
                yield Label("")
        with Horizontal():
            yield OrderedCheckbox("post-only", id="in-post_only", compact=True)
            yield OrderedCheckbox("reduce-only", id="in-reduce_only", compact=True)
        yield Static("", id="entry-preview")
        yield Static("", id="entry-verdict")
        yield Static("", id="entry-errors")

    # -- reading the form ---------------------------------------------------------------------

    def value(self, field: str) -> str:
        return self.query_one(f"#in-{field}", Input).value.strip()

    def set_value(self, field: str, value: str) -> None:
        self.query_one(f"#in-{field}", Input).value = value

    def _number(self, field: str, raw: str) -> Decimal | None:
        value, problem = positive_decimal(raw)
        if problem:
            self.errors[field] = problem
        return value

    def _decimal(self, field: str) -> Decimal | None:
        return self._number(field, self.value(field))

    def _kind(self) -> str:
        kind = self.value("type").lower()
        return _TYPES.get(kind, kind)

    def _unused(self, what: str, fields: tuple[str, ...]) -> None:
        """Strict about filled fields the order would ignore: the trader meant something by them."""
        for field in fields:
            raw = self.value(field)
            if raw and not (field == "leverage" and self._number(field, raw) == 1):
                self.errors.setdefault(field, f"not used by {what}: clear it")

    def build(self) -> Draft | None:
        """Parse the form into what Enter posts; problems land in ``errors`` (field -> text)."""
        self.errors = {}
        side = _SIDES.get(self.value("side").lower())
        if side is None:
            self.errors["side"] = "buy or sell"
        kind = self._kind()
        if kind not in {t.value for t in OrderType} | set(CONTINGENT_TYPES):
            self.errors["type"] = "market, limit, stop, stop_limit, take_profit, oco or trailing"
        tif = _TIFS.get(self.value("tif").lower() or "gtc")  # an empty TIF means GTC
        if tif is None:
            self.errors["tif"] = "gtc, ioc, fok or po (empty: gtc)"
        if self.query_one("#in-post_only", Checkbox).value:
            tif = "PO"
        reduce_only = self.query_one("#in-reduce_only", Checkbox).value
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
        bracket = tp is not None or sl is not None
        if kind in CONTINGENT_TYPES or bracket:
            what = {"oco": "an OCO", "trailing": "a trailing stop"}.get(kind, "a bracket")
            if tif not in ("GTC", None):
                self.errors.setdefault("tif", f"{what} works GTC only, got {tif}")
        if kind == "oco":
            self._unused(what, ("leverage", "take_profit", "stop_loss"))
            for field, value in (("price", price), ("stop_price", stop)):
                if value is None:
                    self.errors.setdefault(field, "required for an OCO (a limit at Price, a stop at Stop)")
        elif kind == "trailing":
            self._unused(what, ("leverage", "price", "stop_price", "take_profit", "stop_loss"))
            trail, percent = self._trail()
            activation = self._decimal("activation")
        elif bracket and "type" not in self.errors:
            if kind not in ("market", "limit"):
                self.errors.setdefault("stop_loss" if sl is not None else "take_profit",
                                       f"a bracket needs a market or limit entry, not {kind}")
            if reduce_only:
                self.errors.setdefault("reduce_only", "a bracket's entry opens a position: untick reduce-only")
        if self.errors:
            return None
        assert side is not None and amount is not None
        try:
            if kind == "oco":
                return self._oco(side, amount, price, stop, reduce_only, account)  # type: ignore[arg-type]
            if kind == "trailing":
                return self._trailing(side, amount, trail, percent, activation, account)
            request = OrderRequest(
                symbol=self.value("symbol"), side=side, type=kind, amount=amount, price=price, stop_price=stop,
                time_in_force=tif, reduce_only=reduce_only, leverage=leverage, account=account,
            )
        except ValidationError as exc:
            self._explain(exc)
            return None
        if bracket:
            return self._bracket(request, sl, tp)
        return Draft(OrderSubmitted(request), (request,))

    def _trail(self) -> tuple[Decimal | None, Decimal | None]:
        """Trail: an amount ("100") or a percent ("0.5%") of the best price since activation."""
        raw = self.value("trail")
        if not raw:
            self.errors["trail"] = "required: an amount (100) or a percent (0.5%)"
            return None, None
        if not raw.endswith("%"):
            return self._decimal("trail"), None
        percent = self._number("trail", raw.removesuffix("%"))
        if percent is not None and percent >= 100:
            self.errors["trail"] = f"a percent below 100, got {raw}"
            return None, None
        return None, percent

    def _explain(self, exc: ValidationError) -> None:
        """The model's refusals in the form's words: each under its field, without repeating
        the field's (internal) name, never pydantic's own phrasing."""
        for err in exc.errors():
            loc = str(err["loc"][0]) if err["loc"] else ""
            msg = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "string_too_short":
                msg = "required"
            for problem in msg.split("; "):
                field = loc or next((f for f in ("stop_price", "price", "amount", "symbol", "leverage", "post-only")
                                     if problem.startswith(f)), "type")
                if field != "post-only":
                    problem = problem.removeprefix(f"{field} ").removeprefix("is ").replace("stop_price", "Stop")
                field = {"time_in_force": "tif", "post-only": "tif"}.get(field, field)
                self.errors.setdefault(field, problem)

    def _bracket(self, entry: OrderRequest, sl: Decimal | None, tp: Decimal | None) -> Draft | None:
        ref = entry.price or self._prices().get(entry.symbol)
        if ref is not None:
            for problem in protective_problems(entry.side, ref, sl, tp):
                self.errors.setdefault("stop_loss" if problem.startswith("stop-loss") else "take_profit", problem)
        if self.errors:
            return None
        parts = [f"entry {entry.type.value}" + (f" {_fmt(entry.price)}" if entry.price is not None else "")]
        parts += [f"SL {_fmt(sl)}"] if sl is not None else []
        parts += [f"TP {_fmt(tp)}"] if tp is not None else []
        summary = "bracket: " + ", ".join(parts)
        params = {"entry": entry.price, "stop_loss": sl, "take_profit": tp, "leverage": entry.leverage,
                  "account": entry.account}
        message = ContingentSubmitted("bracket", entry.symbol, entry.side.value, entry.amount, params, summary)
        return Draft(message, (entry,), summary)

    def _oco(self, side: str, amount: Decimal, price: Decimal, stop: Decimal, reduce_only: bool,
             account: str | None) -> Draft | None:
        limit = OrderRequest(symbol=self.value("symbol"), side=side, type="limit", amount=amount, price=price,
                             reduce_only=reduce_only, account=account)
        stop_leg = OrderRequest(symbol=limit.symbol, side=side, type="stop", amount=amount, stop_price=stop,
                                reduce_only=reduce_only, account=account)
        # A sell OCO takes profit above and stops out below (a buy: the other way round); on the
        # wrong side of the last price one of them would trade at once.
        sell = limit.side is Side.SELL
        last = self._prices().get(limit.symbol)
        if last is not None:
            if price <= last if sell else price >= last:
                self.errors["price"] = f"the limit must be {'above' if sell else 'below'} the last price {_fmt(last)}"
            if stop >= last if sell else stop <= last:
                self.errors["stop_price"] = f"the stop must be {'below' if sell else 'above'} the last price {_fmt(last)}"
        elif price <= stop if sell else price >= stop:
            self.errors["price"] = f"the limit must be {'above' if sell else 'below'} the stop for a {limit.side.value} OCO"
        if self.errors:
            return None
        summary = (f"OCO: {side} limit {_fmt(price)} / stop {_fmt(stop)}"
                   f"{', reduce-only' if reduce_only else ''}: one fills, the other is cancelled")
        params = {"price": price, "stop_price": stop, "reduce_only": reduce_only, "account": account}
        return Draft(ContingentSubmitted("oco", limit.symbol, side, amount, params, summary), (limit, stop_leg), summary)

    def _trailing(self, side: str, amount: Decimal, trail: Decimal | None, percent: Decimal | None,
                  activation: Decimal | None, account: str | None) -> Draft:
        # what the core checks: the reduce-only market order the stop sends when it fires
        exit_order = OrderRequest(symbol=self.value("symbol"), side=side, type="market", amount=amount,
                                  reduce_only=True, account=account)
        sell = exit_order.side is Side.SELL
        distance = f"{_fmt(percent)}%" if percent is not None else _fmt(trail)  # type: ignore[arg-type]
        summary = (f"trailing stop: {side} at market when the price comes back {distance} from its "
                   f"{'high' if sell else 'low'}" + (f", from {_fmt(activation)}" if activation is not None else ""))
        params: dict[str, object] = {"activation_price": activation, "account": account}
        params["trail_percent" if percent is not None else "trail_amount"] = percent if percent is not None else trail
        return Draft(ContingentSubmitted("trailing", exit_order.symbol, side, amount, params, summary), (exit_order,),
                     summary)

    # -- live preview ------------------------------------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id and event.input.has_focus:
            self._touched.add(event.input.id.removeprefix("in-"))
        if event.input.id == "in-type":
            self._show_trailing(self._kind() == "trailing")
        self.refresh_preview()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self.refresh_preview()

    def _show_trailing(self, show: bool) -> None:
        for widget in self.query(".-trailing-only"):
            if widget.display != show:  # a display change relayouts the form: only when it changes
                widget.display = show

    def refresh_preview(self) -> None:
        draft = self.build()
        self._show_errors()
        preview = self.query_one("#entry-preview", Static)
        verdict = self.query_one("#entry-verdict", Static)
        self.summary = draft.summary if draft is not None else ""
        if draft is None:
            update_text(preview, "")
            update_text(verdict, "")
            self.verdict = []
            return
        request = draft.checks[0]
        text = Text(draft.summary + "\n", style="bold") if draft.summary else Text()
        ref = request.price or request.stop_price or self._prices().get(request.symbol)
        if ref is not None:
            notional = request.amount * ref
            fee = self._fee(request, notional)
            # a reduce-only order holds no margin (the engine reserves none for it)
            margin = "none (reduce-only)" if request.reduce_only else f"{notional / request.leverage:,.2f}"
            text.append(f"Notional {notional:,.2f}  fee {'~' + format(fee, ',.2f') if fee is not None else 'unknown'}"
                        f"\nMargin {margin}")
        update_text(preview, text)
        self.verdict = [problem for r in draft.checks for problem in self._checker(r)]
        if self.verdict:
            update_text(verdict, Text("✗ " + "; ".join(dict.fromkeys(self.verdict)), style="bold red"))
        else:
            update_text(verdict, Text("✓ passes risk checks", style="green"))

    def _fee(self, request: OrderRequest, notional: Decimal) -> Decimal | None:
        """The fee at the market's own rate (None when the venue does not say): maker if the
        order would rest, taker if it would take."""
        market = self._markets(request.account).get(request.symbol) if self._markets is not None else None
        if market is None:
            return None
        return market.estimate_fee(notional, maker=self._would_rest(request))

    def _would_rest(self, request: OrderRequest) -> bool:
        """Post-only always rests; a GTC limit rests unless it crosses the last price; IOC/FOK,
        market and triggered orders take."""
        if request.time_in_force is TimeInForce.PO:
            return True
        if request.type is not OrderType.LIMIT or request.time_in_force is not TimeInForce.GTC:
            return False
        last = self._prices().get(request.symbol)
        if last is None or request.price is None:
            return False  # unknown: the dearer guess
        return request.price < last if request.side is Side.BUY else request.price > last

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
            name = _NAMES.get(field) or FIELDS.get(field, (field.capitalize(),))[0]
            text.append(f"{name}: {problem}", style="red")
        update_text(self.query_one("#entry-errors", Static), text)

    def submit(self) -> bool:
        """Enter in any field (see SubmitOnEnter): the form as it is now."""
        draft = self.build()
        self._show_errors(all_fields=True)
        if draft is None:
            first = next(iter(self.errors), None)
            if first is not None:
                with suppress(NoMatches):
                    self.query_one(f"#in-{first}").focus()
            return False
        self.post_message(draft.message)
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
