"""The console's side of reconciliation, mixed into TradedeskApp (app.py stays small).

ctrl+r (or the palette) opens the reconciliation view: each account's last ``Engine.reconcile``
report (live accounts reconcile at start-up), with the trader's answer for every order adopted
from the venue. Reconciling now, keeping and ignoring run as workers in the "orders" group like
every trader action. An ignored order leaves the orders pane (the bridge reports it).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import suppress
from typing import TYPE_CHECKING, Any, TypeVar

from textual.app import App, SystemCommand
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widget import Widget

from core import EngineError
from core.models import Order
from widgets import messages as m
from widgets.orders_view import OrdersView

if TYPE_CHECKING:
    from core import Engine
    from widgets.reconcile_view import DiffRow, ReconcileScreen

W = TypeVar("W", bound=Widget)


def summary(report: dict[str, Any]) -> str:
    """One line for the event log."""
    if report.get("error"):
        return f"reconciliation of {report['account']} failed: {report['error']}"
    parts = [f"{len(report[k])} {label}" for k, label in (("adopted", "adopted"), ("settled", "settled"),
                                                           ("fills", "with missed fills"), ("missing", "not at the venue"))
             if report.get(k)]
    return f"reconciled {report['account']}: {', '.join(parts) if parts else 'nothing to reconcile'}"


class ReconcileActions(App[None]):
    if TYPE_CHECKING:  # provided by TradedeskApp
        engine: Engine

        def q(self, selector: type[W]) -> W: ...

        def log_line(self, level: str, text: str, at: object = None) -> None: ...

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._kept: set[str] = set()  # adopted orders the trader chose to keep tracking (this session)

    def _reconcile_view(self) -> ReconcileScreen | None:
        from widgets.reconcile_view import ReconcileScreen

        return next((s for s in self.screen_stack if isinstance(s, ReconcileScreen)), None)

    async def reconcile_rows(self) -> list[DiffRow]:
        from widgets.reconcile_view import difference_rows

        reports = self.engine.last_reconciliation
        ids = {oid for r in reports.values() for k in ("adopted", "settled", "fills", "missing", "ignored") for oid in r.get(k, [])}
        orders: dict[str, Order] = {}
        for oid in ids:
            order = await self.engine.get_order_by_id(oid)
            if order is not None:
                orders[oid] = order
        return difference_rows(self.engine.accounts, reports, orders, self.engine.ignored_orders(), self._kept)

    async def action_reconcile_view(self) -> None:
        """ctrl+r: the last reconciliation of every account."""
        from widgets.reconcile_view import ReconcileScreen

        if self._reconcile_view() is None:
            self.push_screen(ReconcileScreen(await self.reconcile_rows()))

    async def action_reconcile_now(self) -> None:
        await self.action_reconcile_view()
        self.post_message(m.ReconcileRequested())

    async def _refresh_reconcile_view(self, status: str | None = None) -> None:
        view = self._reconcile_view()
        if view is not None:
            view.show(await self.reconcile_rows(), status)

    # -- requests from the view ------------------------------------------------------------------

    def on_reconcile_requested(self, message: m.ReconcileRequested) -> None:
        self.run_worker(self._reconcile(), name="reconcile", group="orders", exit_on_error=False)

    async def _reconcile(self) -> None:
        lines = []
        for account in self.engine.accounts:
            report = await self.engine.reconcile(account)
            lines.append(summary(report))
            self.log_line("error" if report.get("error") else "info", lines[-1])
        await self._refresh_reconcile_view("; ".join(lines))

    async def on_keep_external_requested(self, message: m.KeepExternalRequested) -> None:
        self._kept.add(message.order_id)
        self.log_line("info", f"keeping {message.order_id} (adopted from the venue) tracked")
        await self._refresh_reconcile_view(f"{message.order_id} stays tracked")

    def on_ignore_external_requested(self, message: m.IgnoreExternalRequested) -> None:
        self.run_worker(self._ignore(message.order_id, message.reason), name=f"ignore {message.order_id}",
                        group="orders", exit_on_error=False)

    async def _ignore(self, order_id: str, reason: str) -> None:
        try:
            order = await self.engine.ignore_order(order_id, reason)
        except EngineError as exc:
            self.notify(str(exc), severity="error")
            self.log_line("error", str(exc))
            await self._refresh_reconcile_view(str(exc))
            return
        # the engine's notice logs it
        await self._refresh_reconcile_view(f"{order.id} is no longer tracked")

    def on_orders_ignored(self, message: m.OrdersIgnored) -> None:
        with suppress(NoMatches):  # updates can still arrive while the screen is torn down
            self.q(OrdersView).forget(message.order_ids)

    def reconcile_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Reconciliation", "Journal vs venue: adopted, settled, missed fills; keep or ignore",
                            self.action_reconcile_view)
        yield SystemCommand("Reconcile now", "Compare every account with its venue now and show the differences",
                            self.action_reconcile_now)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield from self.reconcile_commands()
