"""The console's side of execution algorithms, mixed into TradedeskApp (app.py stays small).

The f6 dialog's start requests, pause/resume and cancel from the orders pane, and the parent
orders the bridge reports, each run as a worker in the "orders" group like every trader action.
What an algorithm does by itself (completes, fails, is stopped by the halt) reaches the event
log as the engine's notices.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import suppress
from typing import TYPE_CHECKING, TypeVar

from textual.app import App, SystemCommand
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widget import Widget

from core import EngineError
from core.algos_model import AlgoStatus
from core.numbers import clean
from widgets import messages as m
from widgets.order_entry import OrderEntry
from widgets.orders_view import OrdersView, progress

if TYPE_CHECKING:
    from core import Engine
    from widgets.algo_dialog import AlgoScreen  # imported when first shown: not at start-up

W = TypeVar("W", bound=Widget)


class AlgoActions(App[None]):
    if TYPE_CHECKING:  # provided by TradedeskApp
        engine: Engine

        def q(self, selector: type[W]) -> W: ...

        def log_line(self, level: str, text: str, at: object = None) -> None: ...

    def on_algos_changed(self, message: m.AlgosChanged) -> None:
        with suppress(NoMatches):  # updates can still arrive while the screen is torn down
            self.q(OrdersView).upsert_algos(message.parents)

    # -- starting ------------------------------------------------------------------------------

    def action_new_algo(self) -> None:
        from widgets.algo_dialog import AlgoScreen

        if any(isinstance(s, AlgoScreen) for s in self.screen_stack):
            return
        entry = self.q(OrderEntry)
        self.push_screen(AlgoScreen(symbols=sorted(self.engine.markets()), symbol=entry.value("symbol").upper(),
                                    side=entry.value("side")))

    def on_algo_start_requested(self, message: m.AlgoStartRequested) -> None:
        self.run_worker(self._start_algo(message), name=f"start {message.kind} {message.side} {message.amount} "
                        f"{message.symbol}", group="orders", exit_on_error=False)

    async def _start_algo(self, req: m.AlgoStartRequested) -> None:
        algos = self.engine.algos
        start = {"twap": algos.start_twap, "iceberg": algos.start_iceberg,
                 "limit_then_market": algos.start_limit_then_market}[req.kind]
        try:
            parent = await start(req.symbol, req.side, req.amount, **req.params)  # type: ignore[operator]
        except EngineError as exc:  # the core's own words: they name what to fix
            self.log_line("error", str(exc))
            dialog = self._algo_dialog()
            if dialog is not None:
                dialog.show_error(str(exc))
            else:
                self.notify(str(exc), severity="error")
            return
        except Exception as exc:
            dialog = self._algo_dialog()
            if dialog is not None:
                dialog.show_error(f"{type(exc).__name__}: {exc}")
            raise  # to the one place worker failures land
        self.log_line("info", f"{parent.kind.value} {parent.id} started: {parent.side.value} {parent.amount} "
                              f"{parent.symbol}")
        dialog = self._algo_dialog()
        if dialog is not None:
            if self.screen is dialog:
                dialog.dismiss(parent)
            else:  # something (the halt report) is on top of it: dismiss would close that one
                dialog.started(parent)

    def _algo_dialog(self) -> AlgoScreen | None:
        """The open dialog, if the trader has not closed it meanwhile."""
        from widgets.algo_dialog import AlgoScreen

        return next((s for s in self.screen_stack if isinstance(s, AlgoScreen)), None)

    # -- controlling -----------------------------------------------------------------------------

    def on_algo_pause_requested(self, message: m.AlgoPauseRequested) -> None:
        self.run_worker(self._pause_algo(message.algo_id), name=f"pause/resume {message.algo_id}", group="orders",
                        exit_on_error=False)

    async def _pause_algo(self, algo_id: str) -> None:
        algos = self.engine.algos
        parent = algos.get(algo_id)
        try:
            if parent is not None and parent.status is AlgoStatus.PAUSED:
                parent = await algos.resume(algo_id)
            else:
                parent = await algos.pause(algo_id)
        except EngineError as exc:
            self.notify(str(exc), severity="warning")
            self.log_line("warning", str(exc))
            return
        self.log_line("info", f"{parent.kind.value} {parent.id} {parent.status.value} "
                              f"({clean(parent.filled)} of {parent.amount} {parent.symbol}, {progress(parent)})")

    def on_algo_cancel_requested(self, message: m.AlgoCancelRequested) -> None:
        self.run_worker(self._cancel_algo(message.algo_id), name=f"cancel {message.algo_id}", group="orders",
                        exit_on_error=False)

    async def _cancel_algo(self, algo_id: str) -> None:
        try:
            await self.engine.algos.cancel(algo_id)  # the engine's notice logs the outcome
        except EngineError as exc:
            self.notify(str(exc), severity="warning")
            self.log_line("warning", str(exc))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Start an algorithm", "TWAP, iceberg or limit-then-market (f6)", self.action_new_algo)
        yield SystemCommand("Pause or resume the selected algorithm", "On its row in the orders pane",
                            lambda: self.q(OrdersView).action_pause_algo())
        yield SystemCommand("Expand or collapse the selected algorithm", "Its child orders in the orders pane",
                            lambda: self.q(OrdersView).action_toggle_algo())
