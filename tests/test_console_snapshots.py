"""Snapshots of the console's screens (pytest-textual-snapshot; update with --snapshot-update).

Plain ``def`` tests: ``snap_compare`` runs the app in its own event loop. Everything on screen is
deterministic: a ManualClock (header clock and log times read 2026-01-05 09:30:00), a seeded
simulated market, order ids derived from the seed, a journal opened as the relative path
"journal.sqlite" from a temporary working directory (the event log prints the journal path,
which would otherwise be the random tmp path), steady input cursors and no toasts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.command import CommandList, CommandPalette
from textual.pilot import Pilot
from textual.widgets import Input

from console.app import TradedeskApp
from core import Engine, ManualClock, TradingState
from widgets.halt_report import HaltReportScreen
from widgets.help_screen import HelpScreen
from widgets.orders_view import OrdersView
from widgets.positions_table import PositionsTable

from .test_console_flows import QUIET_CLOCK, limit, market, settle

SnapCompare = Callable[..., bool]


class SnapshotApp(TradedeskApp):
    """The console with two test-only changes. It closes its engine when it unmounts:
    snap_compare ends the app with ``app.exit()``, which (unlike ctrl+q) leaves the journal
    open, and its aiosqlite thread then keeps the test process from exiting. And it shows no
    toasts (as ``run_test`` by default): they expire on the wall clock, and a toast posted on the
    main screen stays drawn under a modal after ``clear_notifications()``."""

    async def on_unmount(self) -> None:
        await self.engine.close()

    def notify(self, *args: object, **kwargs: object) -> None:
        pass


@pytest.fixture
def desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], SnapshotApp]:
    monkeypatch.chdir(tmp_path)  # the event log prints the journal path: keep it "journal.sqlite"

    def make() -> SnapshotApp:
        engine = Engine.paper(db=Path("journal.sqlite"), seed=7, clock=ManualClock())
        return SnapshotApp(engine, run_loops=False, flush_interval=0, clock_interval=QUIET_CLOCK)

    return make


async def steady(pilot: Pilot) -> None:
    """Make the screen catch up, then stop the cursor blinking (its phase is wall-clock time)."""
    await settle(pilot)
    app = pilot.app
    for screen in app.screen_stack:
        for inp in screen.query(Input):
            inp.cursor_blink = False
    await pilot.pause()


def clock_of(pilot: Pilot) -> ManualClock:
    return pilot.app.engine.clock  # type: ignore[attr-defined, no-any-return]


# -- scenes --------------------------------------------------------------------------------------


async def empty(pilot: Pilot) -> None:
    await steady(pilot)


async def orders_and_positions(pilot: Pilot) -> None:
    """A filled BTC limit (long 0.01, marked up a tick later), resting ETH and SOL limits, a
    short SOL position from a market sell."""
    engine: Engine = pilot.app.engine  # type: ignore[attr-defined]
    await engine.place_order(limit("BTC/USDT", "50990", "0.01"))
    await engine.place_order(limit("ETH/USDT", "3190", "0.5"))
    await engine.place_order(market("SOL/USDT", "3", side="sell"))
    await engine.place_order(limit("SOL/USDT", "148.5", "3"))
    engine.venue.market.script("BTC/USDT", ["50989.9", "51010"])  # type: ignore[attr-defined]
    await engine.tick()  # the BTC limit fills
    await engine.tick()  # and is marked up
    await settle(pilot)
    assert pilot.app.q(PositionsTable).row_count == 2  # type: ignore[attr-defined]
    assert pilot.app.q(OrdersView).row_count == 2  # type: ignore[attr-defined]
    await steady(pilot)


async def validation_error(pilot: Pilot) -> None:
    await pilot.press(*"abc")
    await pilot.press("tab", "tab", "enter")  # a limit without a price, and a malformed amount
    await steady(pilot)


async def halted_with_report(pilot: Pilot) -> None:
    engine: Engine = pilot.app.engine  # type: ignore[attr-defined]
    await engine.place_order(limit("BTC/USDT", "50990", "0.01"))
    await engine.place_order(limit("ETH/USDT", "3190", "0.1"))
    await engine.place_order(limit("SOL/USDT", "149", "1"))
    await engine.place_order(market("ETH/USDT", "0.2"))
    await settle(pilot)
    await pilot.press("ctrl+k")
    await settle(pilot, clock_of(pilot))
    assert engine.trading_state is TradingState.HALTED
    assert isinstance(pilot.app.screen, HaltReportScreen)
    await steady(pilot)


async def halted(pilot: Pilot) -> None:
    await halted_with_report(pilot)
    await pilot.press("escape")
    assert not isinstance(pilot.app.screen, HaltReportScreen)
    await steady(pilot)


async def help_screen(pilot: Pilot) -> None:
    await pilot.press("f1")
    assert isinstance(pilot.app.screen, HelpScreen)
    await steady(pilot)


async def command_palette(pilot: Pilot) -> None:
    app = pilot.app
    await pilot.press("ctrl+p")
    await pilot.pause()
    assert isinstance(app.screen, CommandPalette)
    gathering = [w for w in app.workers if w.group == CommandPalette._GATHER_COMMANDS_GROUP and not w.is_finished]
    if gathering:
        await app.workers.wait_for_complete(gathering)
    await pilot.pause()
    assert app.screen.query_one(CommandList).option_count > 0
    await steady(pilot)


# -- snapshots ------------------------------------------------------------------------------------


def test_main_screen_empty(snap_compare: SnapCompare, desk: Callable[[], SnapshotApp]) -> None:
    assert snap_compare(desk(), terminal_size=(160, 45), run_before=empty)


def test_main_screen_with_orders_and_positions(snap_compare: SnapCompare, desk: Callable[[], SnapshotApp]) -> None:
    assert snap_compare(desk(), terminal_size=(160, 45), run_before=orders_and_positions)


def test_order_entry_validation_error(snap_compare: SnapCompare, desk: Callable[[], SnapshotApp]) -> None:
    assert snap_compare(desk(), terminal_size=(160, 45), run_before=validation_error)


def test_halt_report(snap_compare: SnapCompare, desk: Callable[[], SnapshotApp]) -> None:
    assert snap_compare(desk(), terminal_size=(160, 45), run_before=halted_with_report)


def test_halted_state(snap_compare: SnapCompare, desk: Callable[[], SnapshotApp]) -> None:
    assert snap_compare(desk(), terminal_size=(160, 45), run_before=halted)


def test_help_screen(snap_compare: SnapCompare, desk: Callable[[], SnapshotApp]) -> None:
    assert snap_compare(desk(), terminal_size=(160, 45), run_before=help_screen)


def test_command_palette(snap_compare: SnapCompare, desk: Callable[[], SnapshotApp]) -> None:
    assert snap_compare(desk(), terminal_size=(160, 45), run_before=command_palette)


def test_main_screen_small_terminal(snap_compare: SnapCompare, desk: Callable[[], SnapshotApp]) -> None:
    assert snap_compare(desk(), terminal_size=(80, 24), run_before=orders_and_positions)


def test_main_screen_large_terminal(snap_compare: SnapCompare, desk: Callable[[], SnapshotApp]) -> None:
    assert snap_compare(desk(), terminal_size=(200, 60), run_before=orders_and_positions)
