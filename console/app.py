"""The tradedesk App: bindings, workers that host the core's loops, and request handling.

The core runs in this event loop: ``engine.run()`` (market ticks, order tracking, breakers) and
the event bridge are workers; every trader action runs as a worker too, so the screen never
waits on a venue. Worker failures are handled in one place (``on_worker_state_changed``).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from collections.abc import Iterable
from contextlib import suppress
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from textual import events, on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input, Static
from textual.worker import Worker, WorkerState

import styles
from console import code_cache, gc_pause, module_cache, regex_cache
from console.algo_actions import AlgoActions
from console.reconcile_actions import ReconcileActions
from console.bridge import EngineBridge
from console.core_log import CoreLogHandler
from console.key_router import KeyRouter
from console.main_screen import MainScreen
from console.theme import TRADEDESK_THEME
from core import Engine, EngineError, TradedeskError
from core.contingent import Contingent
from core.journal import JournalError
from core.models import OrderRequest, OrderType, Side, TradingState
from widgets import messages as m
from widgets.account_summary import AccountSummary
from widgets.event_log import EventLog
from widgets.header_bar import HeaderBar
from widgets.in_place import update_text
from widgets.keys_in_order import move_focus
from widgets.order_entry import OrderEntry
from widgets.orders_view import OrdersView
from widgets.positions_table import PositionsTable
from widgets.protection_dialog import ProtectionScreen, protective_orders

if TYPE_CHECKING:
    from console.styles_cache import StylesCache
    from core.halt import HaltReport

# The dialogs (confirm, halt report, help, modify, quit) are imported where they are shown:
# none is on screen at start-up, and start-up pays for every import.

STYLES = Path(styles.__file__).parent
W = TypeVar("W", bound=Widget)
_START_HEAD_START = 0.3  # seconds of start before saying what it waits for (> the journal's 0.2 s lock wait)


_PANE_FOCUS = frozenset({"focus_entry", "focus_orders", "focus_positions"})

class TradedeskApp(AlgoActions, ReconcileActions, App[None]):  # the algorithms' and reconciliation's handlers
    TITLE = "tradedesk"
    CSS_PATH = [STYLES / "app.tcss", STYLES / "panes.tcss", STYLES / "dialogs.tcss", STYLES / "stats.tcss"]
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("ctrl+k", "halt", "HALT", priority=True, id="halt"),
        Binding("f8", "flatten_all", "Flatten all", id="flatten_all"),
        Binding("f7", "resume", "Resume", id="resume"),
        # Priority: the focus moves as the app reads the key, before it routes the keys typed
        # behind it; a non-priority binding runs only once its key has bubbled back up, after
        # them (widgets.keys_in_order). Tab as Textual's own, on every screen.
        Binding("tab", "app.focus_next", show=False, priority=True, id="focus_next"),
        Binding("shift+tab", "app.focus_previous", show=False, priority=True, id="focus_previous"),
        Binding("f2", "focus_entry", "Entry", priority=True, id="focus_entry"),
        Binding("f3", "focus_orders", "Orders", priority=True, id="focus_orders"),
        Binding("f4", "focus_positions", "Positions", priority=True, id="focus_positions"),
        Binding("f5", "stats", "Stats", id="stats", show=False),
        # priority: it opens the dialog, not the entry's binding, wherever the focus is
        Binding("f6", "new_algo", "Algo", priority=True, id="new_algo"),
        Binding("ctrl+r", "reconcile_view", "Reconcile", id="reconcile", show=False),
        Binding("f1", "help", "Help", id="help"),
        Binding("ctrl+q", "request_quit", "Quit", priority=True, id="quit"),
        Binding("ctrl+c", "ctrl_c", "Quit (twice)", priority=True, show=False, id="quit_twice"),
    ]

    def __init__(
        self,
        engine: Engine,
        *,
        live: bool = False,
        venue_label: str | None = None,
        flush_interval: float = 0.02,
        clock_interval: float = 1.0,
        run_loops: bool = True,
        cache_folder: Path | None = None,
    ) -> None:
        # cache_folder: the user cache folder. The style sheets parsed (console.styles_cache), the
        # code generated (console.code_cache), the patterns compiled (console.regex_cache) and
        # the modules imported (console.module_cache) at the last start are read from it, and
        # this start's are written back after the first frame. None (tests, scripts): none is kept.
        super().__init__()
        self.engine = engine
        self.live = live
        self.venue_label = venue_label or engine.venue.name
        self.flush_interval = flush_interval
        self.clock_interval = clock_interval
        self.run_loops = run_loops
        self.bridge: EngineBridge | None = None
        self._starting: asyncio.Future[None] | None = None
        self._core_log = CoreLogHandler()  # the core's warnings, into the event log
        self.halting = False
        self._keys = KeyRouter(self, self._route_key, lambda key: key.key in self.halt_key.split(","))
        self._ctrl_c_at: float | None = None
        self.register_theme(TRADEDESK_THEME)
        # Not `self.theme = ...`: its watcher re-parses every style sheet once the app runs, after
        # the first parse (~5 ms of the cold start). Before any sheet is parsed, the theme is its
        # variables and its class (both dark themes: the ANSI colour filter stays as it is).
        self.set_reactive(App.theme, TRADEDESK_THEME.name)
        self.stylesheet.set_variables(self.get_css_variables())
        self.add_class(f"-theme-{TRADEDESK_THEME.name}")
        self._styles_cache: StylesCache | None = None
        self.styles_written: asyncio.Future[None] | None = None  # the cache's write, when there is one
        self._cache_folder = cache_folder
        self.code_written: asyncio.Future[bool] | None = None  # console.code_cache's write, when there is one
        self.modules_written: asyncio.Future[bool] | None = None  # console.module_cache's
        self.regexes_written: asyncio.Future[bool] | None = None  # console.regex_cache's
        if cache_folder is not None:  # parsed sheets from the last run (see console.styles_cache)
            from console.styles_cache import StylesCache

            self._styles_cache = StylesCache(self.stylesheet, cache_folder)
            self._styles_cache.load()

    def get_theme_variable_defaults(self) -> dict[str, str]:
        # Our sheets use $buy, $sell, $halt, $live, $paper: any other theme picked from the
        # palette falls back to these instead of failing to parse.
        return {**super().get_theme_variable_defaults(), **TRADEDESK_THEME.variables}

    # -- start and stop ---------------------------------------------------------------------------

    def get_default_screen(self) -> MainScreen:
        engine = self.engine
        self.main_screen = MainScreen(
            accounts=", ".join(engine.accounts), venue=self.venue_label, live=self.live,
            symbols=sorted(engine.markets()), checker=engine.check_order, prices=engine.prices,
            halt_key=self.halt_key, markets=engine.markets,
        )
        return self.main_screen

    def q(self, selector: type[W]) -> W:
        """A widget of the main screen, whatever modal is on top of it."""
        return self.main_screen.query_one(selector)

    async def run_async(self, **kwargs: object) -> object:  # type: ignore[override]
        # The journal opens and restores before the screen is built: started alongside it, each
        # of its steps waited for the UI's work (~90 ms of a ~5 ms job). A start that is refused
        # (journal locked or corrupt, keys refused) is one line, with nothing drawn. A slow one (a
        # real exchange: markets, balances, open orders; a long journal) says what it waits for:
        # the screen could not be drawn before it is done anyway.
        self._core_log.attach()  # before the start: its warnings are held for the event log
        self._starting = asyncio.ensure_future(self.engine.start(warm_halt=False))
        done, _ = await asyncio.wait({self._starting}, timeout=_START_HEAD_START)
        if not done:
            print(f"tradedesk: starting ({self.venue_label}): restoring the journal, connecting...", file=sys.stderr,
                  flush=True)
            await asyncio.wait({self._starting})
        refused = self._starting.exception() if self._starting.done() else None
        if isinstance(refused, (JournalError, TradedeskError)):
            # refused before anything was drawn (journal locked or corrupt, keys refused...):
            # one line, and the terminal is left as it was
            self._core_log.detach()
            print(f"tradedesk: {refused}", file=sys.stderr)
            self._return_code = 2
            return None
        return await super().run_async(**kwargs)  # type: ignore[arg-type]

    async def on_mount(self) -> None:
        if self._starting is None:  # run_test() and other callers that skip run_async
            self._core_log.attach()
            self._starting = asyncio.ensure_future(self.engine.start(warm_halt=False))
        try:
            await self._starting
        except (JournalError, TradedeskError) as exc:
            self.exit(return_code=2, message=f"tradedesk: {exc}")
            return
        if not self.main_screen.is_mounted:  # a quick start (above) is done before the screen is built
            await self.main_screen._mounted_event.wait()
        self._core_log.deliver_to(self.log_line, asyncio.get_running_loop().call_soon_threadsafe)
        if self.engine.settings.keys:
            self.set_keymap(dict(self.engine.settings.keys))
        symbols = sorted(self.engine.markets())
        entry = self.q(OrderEntry)
        if symbols != entry._symbols:
            entry.set_symbols(["BTC/USDT", *[s for s in symbols if s != "BTC/USDT"]] if "BTC/USDT" in symbols else symbols)
        engine = self.engine
        self.bridge = EngineBridge(engine, self, self.flush_interval)
        self.run_worker(self.bridge.run(), name="event-bridge", group="core", exit_on_error=False)
        if self.run_loops:
            self.run_worker(engine.run(), name="engine-loop", group="core", exit_on_error=False)
        await self._show_everything()
        self.tick_clock()
        self.set_interval(self.clock_interval, self.tick_clock)
        self.set_interval(5.0, lambda: gc.freeze())
        self.q(OrderEntry).query_one("#in-amount").focus()

    def on_ready(self) -> None:
        # Full (generation-2) garbage collections walk every live object: with 10,000 tracked
        # orders they took ~200 ms, the console's worst pauses. Long-lived objects are moved
        # out of the collector's reach now and every few seconds; young garbage is still freed.
        gc.freeze()
        self.call_after_refresh(self._after_first_frame)

    def _after_first_frame(self) -> None:
        # what the start imported and compiled, before the lines below import more
        modules, code, regexes = module_cache.imported(), code_cache.used(), regex_cache.used()
        gc_pause.resume()  # collect again
        # The halt's retry library, loaded in a thread: during start-up it held the GIL away from
        # building the screen (~10 ms of the cold start); now it is ready long before a halt.
        self.engine.warm_halt()
        data = self._styles_cache.snapshot() if self._styles_cache is not None else None
        if data is not None:  # first run, or a sheet changed: off the event loop
            self.styles_written = asyncio.get_running_loop().run_in_executor(None, self._styles_cache.write, data)
        if self._cache_folder is not None:  # for the next start
            loop = asyncio.get_running_loop()
            self.code_written = loop.run_in_executor(None, code_cache.save, self._cache_folder, code)
            self.regexes_written = loop.run_in_executor(None, regex_cache.save, self._cache_folder, regexes)
            self.modules_written = loop.run_in_executor(None, module_cache.save, self._cache_folder, modules)

    async def _show_everything(self) -> None:
        """Initial state, restored from the journal."""
        engine = self.engine
        with self.batch_update():
            self.q(OrdersView).upsert_algos(engine.algos.list())  # first: their children group under them
            ignored = engine.ignored_orders()  # open at their venue, no longer tracked: not shown
            self.q(OrdersView).upsert([o for o in await engine.get_orders() if not (o.id in ignored and o.status.is_live)])
            self.show_orders_title()
            self.q(PositionsTable).upsert(await engine.get_positions())
            summary = self.q(AccountSummary)
            for account in engine.accounts:  # the default account first: shown until another is chosen
                summary.show(engine.account_status(account))
            header = self.q(HeaderBar)
            header.state = engine.trading_state
            header.reason = engine.trading_state_reason
        restored = len(await engine.get_orders())
        self.log_line("info", f"journal {engine.db_path}: {restored} order{'' if restored == 1 else 's'} restored, "
                              f"trading {engine.trading_state.value}")

    # -- keys, one at a time (console.key_router) ----------------------------------------------

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, (events.Key, events.Paste)) and not event.is_forwarded:
            await self._keys.receive(event)
        else:
            await super().on_event(event)

    async def _route_key(self, event: events.Event) -> None:
        await super().on_event(event)

    def action_focus_next(self) -> None:
        move_focus(self.screen, +1)

    def action_focus_previous(self) -> None:
        move_focus(self.screen, -1)

    @property
    def halt_key(self) -> str:
        return self.engine.settings.keys.get("halt", "ctrl+k")

    def tick_clock(self) -> None:
        try:
            self.q(HeaderBar).now = self.engine.clock.now()
        except NoMatches:  # the timer can fire while the app is shutting down
            pass

    async def shutdown(self) -> None:
        """Stop the loops and close the journal (idempotent: every exit path comes here)."""
        self.engine.stop()
        await self.engine.close()

    async def on_unmount(self) -> None:
        self._core_log.detach()
        gc_pause.resume()  # an app that ends before its first frame
        await self.shutdown()

    async def action_request_quit(self) -> None:
        open_orders = len(await self.engine.get_active_orders()) if self.engine.journal else 0
        if not open_orders:
            await self.shutdown()
            self.exit()
            return

        async def answered(answer: str | None) -> None:
            if answer == "halt":
                report = await self._halt("quit", show_report=False)
                if not report.clean:  # orders may still work: the trader must see it, not a closed console
                    self.log_line("error", "not quitting: the halt is incomplete (see its report)")
                    from widgets.halt_report import HaltReportScreen
                    self.push_screen(HaltReportScreen(report))
                    return
                await self.shutdown()
                self.exit()
            elif answer == "leave":
                await self.shutdown()
                self.exit()

        from widgets.quit_dialog import QuitScreen
        self.push_screen(QuitScreen(open_orders), answered)

    async def action_quit(self) -> None:
        """Every quit (the palette's too) asks about open orders and closes the journal."""
        await self.action_request_quit()

    async def action_ctrl_c(self) -> None:
        now = time.monotonic()  # the wall clock: "twice" is about the trader's key presses
        if self._ctrl_c_at is not None and now - self._ctrl_c_at < 3.0:
            self._ctrl_c_at = None
            await self.action_request_quit()
            return
        self._ctrl_c_at = now
        self.notify("Press Ctrl+C again to quit", timeout=3)

    # -- messages from the core (via the bridge) ------------------------------------------------

    # Updates can still arrive while the app tears its screen down: then there is nothing to show.

    def on_orders_changed(self, message: m.OrdersChanged) -> None:
        with suppress(NoMatches):
            self.q(OrdersView).upsert(message.orders)

    def on_positions_changed(self, message: m.PositionsChanged) -> None:
        with suppress(NoMatches):
            self.q(PositionsTable).upsert(message.positions)

    def on_account_changed(self, message: m.AccountChanged) -> None:
        with suppress(NoMatches):
            self.q(AccountSummary).show(message.status)

    @on(Input.Changed, "#in-account")
    def account_chosen(self, event: Input.Changed) -> None:
        """The summary follows the account the order entry names (beside the totals)."""
        with suppress(NoMatches):
            self.q(AccountSummary).select(event.value.strip())

    def on_prices_changed(self, message: m.PricesChanged) -> None:
        with suppress(NoMatches):
            self.q(OrderEntry).refresh_preview()

    def on_trading_state_changed(self, message: m.TradingStateChanged) -> None:
        with suppress(NoMatches):
            header = self.q(HeaderBar)
            header.state = message.state
            header.reason = message.reason

    def on_notices_posted(self, message: m.NoticesPosted) -> None:
        for n in message.notices:
            self.log_line(n.level, n.text, n.at)
            if n.level in ("warning", "error", "fill"):
                severity = {"fill": "information", "warning": "warning", "error": "error"}[n.level]
                self.notify(n.text, severity=severity, timeout=4 if n.level == "fill" else 6)  # type: ignore[arg-type]

    def on_orders_filter_changed(self, message: m.OrdersFilterChanged) -> None:
        self.show_orders_title()

    def show_orders_title(self) -> None:
        """The title from the view's counts as they are now: the messages bubble up through the
        screen, and one that arrives late must not put older counts back."""
        with suppress(NoMatches):
            shown_filter, shown, total = self.q(OrdersView).counts
            title = f"Orders — {shown_filter} ({shown} of {total})   f filter · c cancel · m modify · C cancel symbol"
            label = self.main_screen.query_one("#orders-title", Static)
            if str(label.content) != title:
                update_text(label, title)

    def log_line(self, level: str, text: str, at: object = None) -> None:
        try:
            log = self.q(EventLog)
        except NoMatches:  # before the main screen is composed
            return
        log.add(at or self.engine.clock.now(), level, text)  # type: ignore[arg-type]

    # -- requests from widgets -----------------------------------------------------------------------

    @on(m.OrderSubmitted)
    def place(self, message: m.OrderSubmitted) -> None:
        req = message.request
        self.run_worker(self._place(message), name=f"place {req.side.value} {req.amount} {req.symbol}", group="orders",
                        exit_on_error=False)

    async def _place(self, message: m.OrderSubmitted) -> None:
        req = message.request
        try:
            orders = [await self.engine.place_order(req)]  # with a stop-loss/take-profit: a bracket (below)
        except EngineError as exc:
            self.log_line("error", str(exc))
            self.notify(str(exc), severity="error")
            return
        for o in orders:
            if o.status.is_live or o.status.value == "filled":
                self.log_line("info", f"{o.id} {o.side.value} {o.amount} {o.symbol} {o.type.value}: {o.status.value}")

    @on(m.CancelRequested)
    def cancel(self, message: m.CancelRequested) -> None:
        self.run_worker(self._cancel(message.order_id), name=f"cancel {message.order_id}", group="orders",
                        exit_on_error=False)

    async def _cancel(self, order_id: str) -> None:
        try:
            order = await self.engine.cancel_order(order_id)
        except EngineError as exc:
            self.notify(str(exc), severity="warning")
            self.log_line("warning", str(exc))
            return
        self.log_line("info", f"cancel {order.id}: {order.status.value}" + (f" ({order.error})" if order.error else ""))

    @on(m.CancelSymbolRequested)
    def cancel_symbol(self, message: m.CancelSymbolRequested) -> None:
        self.run_worker(self._cancel_symbol(message.symbol), name=f"cancel all {message.symbol}", group="orders",
                        exit_on_error=False)

    async def _cancel_symbol(self, symbol: str) -> None:
        orders = await self.engine.cancel_all_orders(symbol)
        done = sum(1 for o in orders if o.status.value == "cancelled")
        self.log_line("info", f"cancel all {symbol}: {done} of {len(orders)} cancelled")

    @on(m.ModifyRequested)
    def modify(self, message: m.ModifyRequested) -> None:
        order = self.q(OrdersView).order(message.order_id)
        if order is None or not order.status.is_live:
            self.notify("only a live order can be modified", severity="warning")
            return

        def chosen(values: tuple[Decimal | None, Decimal | None] | None) -> None:
            if values is not None:
                self.run_worker(self._modify(message.order_id, *values), name=f"modify {message.order_id}",
                                group="orders", exit_on_error=False)

        from widgets.modify_dialog import ModifyScreen
        self.push_screen(ModifyScreen(order), chosen)

    async def _modify(self, order_id: str, price: Decimal | None, amount: Decimal | None) -> None:
        try:
            order = await self.engine.modify_order(order_id, price=price, amount=amount)
        except EngineError as exc:
            self.notify(str(exc), severity="error")
            self.log_line("error", str(exc))
            return
        self.log_line("info", f"modified {order.id}: {order.amount} @ {order.price}")

    @on(m.ClosePositionRequested)
    def close_position(self, message: m.ClosePositionRequested) -> None:
        symbol = message.symbol
        size = self.engine.ledger.signed_size(symbol)
        if size == 0:
            return
        side = Side.SELL if size > 0 else Side.BUY

        def confirmed(yes: bool | None) -> None:
            if yes:
                req = OrderRequest(symbol=symbol, side=side, type=OrderType.MARKET, amount=abs(size), reduce_only=True,
                                   tag="close position")
                self.run_worker(self._place(m.OrderSubmitted(req)), name=f"close {symbol}", group="orders",
                                exit_on_error=False)

        from widgets.confirm import ConfirmScreen
        self.push_screen(ConfirmScreen(f"Close {symbol} {'long' if size > 0 else 'short'} {abs(size)} at market?",
                                       "A reduce-only market order."), confirmed)

    @on(m.ContingentSubmitted)
    def place_contingent(self, message: m.ContingentSubmitted) -> None:
        self.run_worker(self._place_contingent(message), name=f"{message.kind} {message.side} {message.amount} "
                        f"{message.symbol}", group="orders", exit_on_error=False)

    async def _place_contingent(self, message: m.ContingentSubmitted) -> None:
        place = {"bracket": self.engine.place_bracket_order, "oco": self.engine.place_oco_order,
                 "trailing": self.engine.place_trailing_stop}[message.kind]
        try:
            placed = await place(message.symbol, message.side, message.amount, **message.params)  # type: ignore[operator]
        except EngineError as exc:
            self.log_line("error", str(exc))
            self.notify(str(exc), severity="error")
            return
        if isinstance(placed, Contingent):  # a bracket or OCO: its orders placed so far, by role
            detail = f"{placed.kind} {placed.id}: " + ", ".join(
                f"{role.replace('_', '-')} {leg.orders[-1]}" for role, leg in placed.legs.items() if leg.orders)
        else:  # a trailing stop: one order, held in the core
            detail = f"{placed.id} {placed.status.value}"
        self.log_line("info", f"{message.summary} — {detail}")

    @on(m.ProtectionDialogRequested)
    async def protection_dialog(self, message: m.ProtectionDialogRequested) -> None:
        p = message.position
        current = protective_orders(await self.engine.get_active_orders(p.symbol), p, message.role)
        self.push_screen(ProtectionScreen(p, message.role, current, last=self.engine.prices(p.account).get(p.symbol)))

    @on(m.ProtectionSubmitted)
    def move_protection(self, message: m.ProtectionSubmitted) -> None:
        self.run_worker(self._move_protection(message), name=f"move {message.role} {message.symbol}", group="orders",
                        exit_on_error=False)

    async def _move_protection(self, message: m.ProtectionSubmitted) -> None:
        move = self.engine.update_stop_loss if message.role == "stop_loss" else self.engine.update_take_profit
        dialog = next((s for s in self.screen_stack if isinstance(s, ProtectionScreen)), None)
        try:
            orders = await move(message.symbol, message.price, account=message.account)
        except EngineError as exc:  # as the core words it, in the dialog that stays open to fix it
            self.log_line("error", str(exc))
            if dialog is not None:
                dialog.show_error(str(exc))
            else:  # the trader closed it before the answer came
                self.notify(str(exc), severity="error")
            return
        text = f"{message.role.replace('_', '-')} {message.symbol} moved to {message.price}: " + (
            ", ".join(f"{o.id} {o.status.value}" for o in orders) or "the bracket's planned leg")
        self.log_line("info", text)
        if dialog is not None:
            dialog.done(text)

    @on(m.HaltRequested)
    def halt_button(self) -> None:
        self.action_halt()

    # -- actions ---------------------------------------------------------------------------------

    def action_halt(self) -> None:
        """No confirmation: cancelling is always safe. Works from every screen and modal."""
        self.halting = True
        try:
            self.q(HeaderBar).reason = "halting…"
        except NoMatches:
            pass
        self.log_line("error", "HALT requested: cancelling every open order")
        self.run_worker(self._halt("HALT key"), name="halt", group="halt", exit_on_error=False)

    async def _halt(self, reason: str, flatten: bool = False, show_report: bool = True) -> HaltReport:
        report = await self.engine.halt_trading(reason, flatten=flatten)
        self.halting = False
        if self.bridge is not None:
            self.bridge.flush()  # the engine's notice logs the summary (and toasts it when unclean)
        if report.clean:
            self.notify(report.summary(), severity="information", timeout=8)
        if show_report:
            from widgets.halt_report import HaltReportScreen
            self.push_screen(HaltReportScreen(report))
        return report

    def action_flatten_all(self) -> None:
        def confirmed(yes: bool | None) -> None:
            if yes:
                self.log_line("error", "FLATTEN ALL: halting and closing every position")
                self.run_worker(self._halt("flatten all", flatten=True), name="flatten", group="halt", exit_on_error=False)

        from widgets.confirm import ConfirmScreen
        self.push_screen(ConfirmScreen("Flatten all? Halts trading, cancels every order and closes every position at market.",
                                       "Positions close with reduce-only market orders."), confirmed)

    def action_resume(self) -> None:
        if self.engine.trading_state is TradingState.ACTIVE:
            self.notify("trading is already ACTIVE")
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.run_worker(self.engine.resume_trading("resumed from the console"), name="resume", group="orders",
                                exit_on_error=False)

        from widgets.confirm import ConfirmScreen
        self.push_screen(ConfirmScreen(f"Resume trading? It is {self.engine.trading_state.value}: "
                                       f"{self.engine.trading_state_reason}"), confirmed)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # F2-F4 are priority bindings, seen under every screen: they move the main screen's focus,
        # so under a dialog or the stats screen the key goes on to that screen as it did
        if action in _PANE_FOCUS and self.screen is not self.main_screen:
            return False
        if action == "new_algo" and self.screen.is_modal:  # as before it was priority
            return False
        return super().check_action(action, parameters)

    # set_focus, not Widget.focus(): that one is queued behind keys already read, which would
    # still go to the field the trader is leaving
    def action_focus_entry(self) -> None:
        amount = self.q(OrderEntry).query_one("#in-amount", Input)
        self.main_screen.set_focus(amount)
        # selected, as entering a field does, even when the focus was there already (after an
        # Enter): queued behind the keys already on their way to it, so F2 then typing replaces
        amount.call_later(amount.select_all)

    def action_focus_orders(self) -> None:
        self.main_screen.set_focus(self.q(OrdersView))

    def action_focus_positions(self) -> None:
        self.main_screen.set_focus(self.q(PositionsTable))

    def action_stats(self) -> None:
        from widgets.stats_screen import StatsScreen  # imported on first use: start-up stays fast

        journal = self.engine.journal
        if journal is None or isinstance(self.screen, StatsScreen):
            return
        self.push_screen(StatsScreen(load=journal.load, now=self.engine.clock.now,
                                     export_dir=Path(self.engine.db_path).expanduser().parent / "exports"))

    def action_help(self) -> None:
        from widgets.help_screen import HelpScreen
        self.push_screen(HelpScreen(self.binding_rows()))

    def binding_rows(self) -> list[tuple[str, str, str, str]]:
        keymap = self.engine.settings.keys
        rows = []
        for where, bindings in (("everywhere", self.BINDINGS), ("orders", OrdersView.BINDINGS),
                                ("positions", PositionsTable.BINDINGS)):
            for b in bindings:
                if isinstance(b, Binding) and b.id and b.description:
                    rows.append((where, keymap.get(b.id, b.key), b.description, b.id))
        rows.append(("everywhere", "ctrl+p", "Command palette", "command_palette"))
        return rows

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("HALT", "Cancel every open order on every account (no confirmation)", self.action_halt)
        yield SystemCommand("Flatten all", "Halt and close every position at market (asks first)", self.action_flatten_all)
        yield SystemCommand("Resume trading", "Lift HALTED/REDUCING (asks first)", self.action_resume)
        yield SystemCommand("New order", "Focus the order entry", self.action_focus_entry)
        yield SystemCommand("Orders", "Focus the orders pane", self.action_focus_orders)
        yield SystemCommand("Positions", "Focus the positions pane", self.action_focus_positions)
        yield SystemCommand("Stats", "Trade statistics, execution quality, equity curve; CSV export", self.action_stats)
        yield SystemCommand("Cancel selected order", "Cancel the order under the cursor",
                            lambda: self.q(OrdersView).action_cancel_order())
        yield SystemCommand("Modify selected order", "Change its price or amount",
                            lambda: self.q(OrdersView).action_modify_order())
        yield SystemCommand("Cancel all orders of the selected symbol", "Per-symbol cancel-all",
                            lambda: self.q(OrdersView).action_cancel_symbol())
        yield SystemCommand("Filter orders", "open / all / history / per symbol",
                            lambda: self.q(OrdersView).action_cycle_filter())
        yield SystemCommand("Close selected position", "Reduce-only market order (asks first)",
                            lambda: self.q(PositionsTable).action_close_position())
        yield SystemCommand("Move stop-loss of the selected position", "Replace its stop-loss orders at a new price",
                            lambda: self.q(PositionsTable).action_move_protection("stop_loss"))
        yield SystemCommand("Move take-profit of the selected position", "Replace its take-profit orders at a new price",
                            lambda: self.q(PositionsTable).action_move_protection("take_profit"))
        yield SystemCommand("Key bindings and their ids", "Every binding, remappable under [keys]", self.action_help)
        yield SystemCommand("Quit tradedesk", "Asks whether to halt first when orders are open", self.action_request_quit)

    # -- workers ---------------------------------------------------------------------------------

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place worker failures land: shown loudly, never swallowed."""
        if event.state is WorkerState.ERROR:
            error = event.worker.error
            text = f"{event.worker.name or 'task'} failed: {type(error).__name__}: {error}"
            self.log_line("error", text)
            self.notify(text, severity="error", timeout=10)
            if event.worker.group == "halt":
                self.halting = False
                self.notify("THE HALT FAILED — check the venue directly", severity="error", timeout=30)
