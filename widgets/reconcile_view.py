"""The reconciliation view: what each account's last reconciliation found between the journal
and the venue, and the trader's answer for each order adopted from the venue.

Rows name the orders adopted from the venue (placed by another client, or lost from the
journal), journal orders settled by a lookup and how, missed fills booked, orders the venue does
not know, ignored orders still open there, and errors. Keys: a keeps an adopted order tracked,
i ignores it (asks why: the reason is journaled; the venue is told nothing), r reconciles every
account now. The view shows what the console gives it and posts requests; it never calls the
engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static

from core.models import Order
from widgets.messages import IgnoreExternalRequested, KeepExternalRequested, ReconcileRequested
from widgets.keys_in_order import OrderedInput, SubmitOnEnter

KIND_LABELS = {
    "adopted": "adopted", "settled": "settled", "fills": "missed fills", "missing": "not at venue",
    "ignored": "ignored", "error": "ERROR", "agrees": "agrees", "pending": "not run",
}
KEYS = "[b]a[/b] keep tracking   [b]i[/b] ignore   [b]r[/b] reconcile now   [b]esc[/b] close"


@dataclass(frozen=True, slots=True)
class DiffRow:
    account: str
    kind: str  # a KIND_LABELS key
    order_id: str  # "" for a row about the whole account
    detail: str
    decision: str = ""  # adopted orders: tracking, kept, ignored: <reason>, or how the order ended


def _num(value: object) -> str:
    text = f"{value:f}" if value is not None else ""
    return text.rstrip("0").rstrip(".") if "." in text else text


def describe(order: Order | None) -> str:
    if order is None:
        return "(no longer in the journal)"
    price = f" @ {_num(order.price)}" if order.price is not None else ""
    return f"{order.symbol} {order.side.value} {_num(order.amount)}{price}  client id {order.client_order_id}"


def _missed(fills: Mapping[str, Any]) -> str:
    count = int(fills.get("count", 0))
    return f"{count} missed fill{'s' if count != 1 else ''} booked ({fills.get('amount')})"


def decision(order: Order | None, ignored: Mapping[str, str], kept: set[str]) -> str:
    if order is None:
        return ""
    if order.id in ignored:
        return f"ignored: {ignored[order.id]}"
    if order.status.is_final:
        return order.status.value
    return "kept" if order.id in kept else "tracking"


def difference_rows(
    accounts: Iterable[str],
    reports: Mapping[str, Mapping[str, Any]],
    orders: Mapping[str, Order],
    ignored: Mapping[str, str],
    kept: set[str],
) -> list[DiffRow]:
    """The rows for each account's last reconciliation report (``Engine.reconcile``)."""
    rows: list[DiffRow] = []
    for account in accounts:
        report = reports.get(account)
        if report is None:
            rows.append(DiffRow(account, "pending", "", "not reconciled since start-up: r reconciles now"))
            continue
        found: list[DiffRow] = []
        if report.get("error"):
            found.append(DiffRow(account, "error", "", f"could not reconcile: {report['error']}"))
        fills: Mapping[str, Mapping[str, Any]] = report.get("fills", {})
        settled: Mapping[str, str] = report.get("settled", {})
        for oid in report.get("adopted", []):
            order = orders.get(oid)
            found.append(DiffRow(account, "adopted", oid, describe(order), decision(order, ignored, kept)))
        for oid, status in settled.items():
            how = f"{status}, found by a lookup by client order id"
            found.append(DiffRow(account, "settled", oid, f"{how}; {_missed(fills[oid])}" if oid in fills else how))
        for oid, booked in fills.items():
            if oid not in settled and oid not in report.get("adopted", []):
                found.append(DiffRow(account, "fills", oid, f"{_missed(booked)}; still open"))
        for oid in report.get("missing", []):
            found.append(DiffRow(account, "missing", oid, "the venue does not know it: still tracked, check it there"))
        for oid in report.get("ignored", []):
            found.append(DiffRow(account, "ignored", oid, f"still open at the venue; {decision(orders.get(oid), ignored, kept)}"))
        rows.extend(found or [DiffRow(account, "agrees", "", "nothing to reconcile: the journal and the venue agree")])
    return rows


class IgnoreReasonScreen(SubmitOnEnter, ModalScreen[str | None]):
    """Asks why an adopted order is ignored: the answer is journaled with the order_ignored event."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="ignore.cancel")]
    DEFAULT_CSS = """
    IgnoreReasonScreen { align: center middle; }
    IgnoreReasonScreen > Vertical { width: 64; max-width: 95%; height: auto; padding: 1 2; }
    IgnoreReasonScreen #ignore-error { height: auto; }
    """

    def __init__(self, order_id: str, detail: str) -> None:
        super().__init__()
        self.order_id = order_id
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"Ignore {self.order_id}? The desk stops tracking it; the venue is told nothing "
                         "and it stays open there (a HALT still cancels it).", id="ignore-question")
            yield Static(self.detail, id="ignore-detail")
            yield OrderedInput(placeholder="why (journaled)", id="ignore-reason")
            yield Static("", id="ignore-error")
            yield Static("[b]enter[/b] ignore   [b]esc[/b] cancel")

    def submit(self) -> None:
        """Enter (see SubmitOnEnter): the reason as typed up to it."""
        reason = self.query_one("#ignore-reason", Input).value.strip()
        if not reason:
            self.query_one("#ignore-error", Static).update("a reason is needed: it is journaled with the order")
            return
        self.dismiss(reason)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ReconcileScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("a", "keep", "Keep tracking", id="reconcile.keep"),
        Binding("i", "ignore", "Ignore", id="reconcile.ignore"),
        Binding("r", "reconcile", "Reconcile now", id="reconcile.run"),
        Binding("escape,q", "close", "Close", id="reconcile.close"),
    ]
    DEFAULT_CSS = """
    ReconcileScreen { align: center middle; }
    ReconcileScreen > Vertical { width: 110; max-width: 95%; height: auto; max-height: 90%; padding: 0 1; }
    ReconcileScreen DataTable { height: auto; max-height: 20; }
    ReconcileScreen #reconcile-status { height: auto; margin-top: 1; }
    """

    def __init__(self, rows: list[DiffRow], status: str = "") -> None:
        super().__init__()
        self.rows = rows
        self._status = status

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("[b]Reconciliation[/b]  journal and venue, the last run of each account", id="reconcile-title")
            yield DataTable(cursor_type="row", id="reconcile-table")
            yield Static(self._status, id="reconcile-status")
            yield Static(KEYS, id="reconcile-keys")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("Account", "Found", "Order", "Detail", "Decision")
        self.show(self.rows, self._status)

    def show(self, rows: list[DiffRow], status: str | None = None) -> None:
        """New rows (after a reconciliation or a decision); the cursor stays on its order."""
        table = self.query_one(DataTable)
        keep = self.selected.order_id if self.selected is not None else None
        self.rows = rows
        table.clear()
        for i, row in enumerate(rows):
            table.add_row(row.account, KIND_LABELS[row.kind], row.order_id or "-", row.detail, row.decision, key=str(i))
        at = next((i for i, r in enumerate(rows) if keep and r.order_id == keep), None)
        if at is None:
            at = next((i for i, r in enumerate(rows) if r.kind == "adopted"), 0)
        if rows:
            table.move_cursor(row=at)
        if status is not None:
            self.query_one("#reconcile-status", Static).update(status)

    @property
    def selected(self) -> DiffRow | None:
        table = self.query_one(DataTable)
        if not self.rows or not 0 <= table.cursor_row < len(self.rows):
            return None
        return self.rows[table.cursor_row]

    def _adopted(self) -> DiffRow | None:
        row = self.selected
        if row is None or row.kind != "adopted":
            self.query_one("#reconcile-status", Static).update("a and i act on an adopted external order: select one")
            return None
        return row

    def action_keep(self) -> None:
        row = self._adopted()
        if row is not None:
            self.post_message(KeepExternalRequested(row.order_id))

    def action_ignore(self) -> None:
        row = self._adopted()
        if row is None:
            return
        if row.decision not in ("tracking", "kept"):
            self.query_one("#reconcile-status", Static).update(f"{row.order_id} is not tracked any more ({row.decision})")
            return

        def answered(reason: str | None) -> None:
            if reason:
                self.post_message(IgnoreExternalRequested(row.order_id, reason))

        self.app.push_screen(IgnoreReasonScreen(row.order_id, row.detail), answered)

    def action_reconcile(self) -> None:
        self.query_one("#reconcile-status", Static).update("reconciling every account with its venue…")
        self.post_message(ReconcileRequested())

    def action_close(self) -> None:
        self.dismiss(None)
