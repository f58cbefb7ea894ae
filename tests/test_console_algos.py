"""Execution algorithms in the console: the f6 dialog, parent rows in the orders pane with their
children folded under them, pause/resume and cancel from the keyboard, the halt, and the notes
a restart leaves. The engine runs on a ManualClock (``run_loops=False``): slices fall when a test
advances it, and ``run`` lets the algorithm's task and the journal finish before the screen is read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal as D
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select, Static

from console.app import TradedeskApp
from core import Engine, ManualClock, OrderRequest, OrderStatus, TradingState
from core.algos import AlgoStatus, ParentOrder
from widgets.algo_dialog import AlgoScreen
from widgets.halt_report import HaltReportScreen
from widgets.help_screen import HelpScreen
from widgets.orders_view import OrdersView
from widgets.quit_dialog import QuitScreen

from .test_algos import settle as engine_settle
from .test_console_flows import SIZE, log_text, make_app, order_lines, orders_title, settle, type_text, until

BTC = "BTC/USDT"


@pytest.fixture
async def app(tmp_path: Path, clock: ManualClock) -> AsyncIterator[TradedeskApp]:
    app = make_app(tmp_path / "j.sqlite", clock)
    yield app
    await app.engine.close()


async def run(pilot: Pilot, clock: ManualClock, seconds: float = 0.0) -> None:
    """Move the engine clock, let the algorithms, the actions and the journal finish, show the
    result. Nothing else moves the clock: a slice never falls while an action is in flight."""
    engine: Engine = pilot.app.engine  # type: ignore[attr-defined]
    if seconds:
        clock.advance(seconds)
    await engine_settle(engine)
    await settle(pilot)
    await engine_settle(engine)
    await settle(pilot)


def row(app: TradedeskApp, index: int = 0) -> list[str]:
    return order_lines(app)[index].split()


def only_algo(app: TradedeskApp) -> ParentOrder:
    [parent] = app.engine.algos.list()
    return parent


def dialog(app: TradedeskApp) -> AlgoScreen:
    assert isinstance(app.screen, AlgoScreen)
    return app.screen


def dialog_input(app: TradedeskApp, input_id: str) -> Input:
    return dialog(app).query_one(f"#{input_id}", Input)


async def start_twap(pilot: Pilot, clock: ManualClock, child_type: str = "market") -> ParentOrder:
    """A TWAP buying 0.9 BTC in 3 slices over 60 s, through the engine (the dialog has its own test)."""
    app: TradedeskApp = pilot.app  # type: ignore[assignment]
    parent = await app.engine.algos.start_twap(BTC, "buy", D("0.9"), duration=60, slices=3, child_type=child_type)
    await run(pilot, clock)
    return parent


async def test_a_twap_from_the_dialog_shows_progress_and_its_children_fold_under_it(
    app: TradedeskApp, clock: ManualClock
) -> None:
    engine = app.engine
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f6")
        assert app.focused is dialog_input(app, "algo-amount")  # symbol and side come from the order entry
        assert dialog_input(app, "algo-symbol").value == BTC and dialog_input(app, "algo-side").value == "buy"
        await type_text(pilot, "0.9")
        await pilot.press("tab")
        await type_text(pilot, "60")
        await pilot.press("tab")
        await type_text(pilot, "3")
        await pilot.press("enter")
        await run(pilot, clock)

        assert not isinstance(app.screen, AlgoScreen)  # started: the dialog closed
        parent = only_algo(app)
        assert (parent.kind.value, parent.symbol, parent.side.value, parent.amount) == ("twap", BTC, "buy", D("0.9"))
        assert (parent.params.duration, parent.params.slices) == (60, 3)  # type: ignore[union-attr]
        assert f"twap {parent.id} started: buy 0.9 {BTC}" in log_text(app)
        view = app.q(OrdersView)
        assert view.visible_ids() == [f"algo:{parent.id}"]
        assert row(app)[1:7] == [BTC, "buy", "▸", "twap", "0.9", "0.3"]
        assert "running 33%" in order_lines(app)[0] and f"{parent.id} 1 order " in order_lines(app)[0]

        await pilot.press("f3", "f")  # all: the filled child is still no top-level row
        assert view.filter == "all" and view.row_count == 1

        await run(pilot, clock, 20)  # the second slice
        assert row(app)[6] == "0.6" and "running 66%" in order_lines(app)[0] and "2 orders" in order_lines(app)[0]
        assert "p" in app.screen.active_bindings  # the algorithm keys show while its row is selected

        await pilot.press("enter")  # expand
        kids = await engine.algos.children(parent.id)
        assert view.is_expanded(parent.id) and view.visible_ids() == [f"algo:{parent.id}", *(k.id for k in kids)]
        assert [row(app, i)[3:6] for i in (1, 2)] == [["└", "market", "0.3"], ["└", "market", "0.3"]]
        assert row(app)[3] == "▾"
        assert "all (1 of 1)" in orders_title(app)  # an algorithm is one entry, its children none
        await pilot.press("down")  # on a child: the algorithm keys are gone, the order keys work
        assert view.selected_id == kids[0].id and "p" not in app.screen.active_bindings
        await pilot.press("up", "space")  # collapse
        assert view.visible_ids() == [f"algo:{parent.id}"]

        await run(pilot, clock, 20)  # the last slice
        assert engine.algos.get(parent.id).status is AlgoStatus.COMPLETED  # type: ignore[union-attr]
        assert row(app)[6] == "0.9" and "completed 100%" in order_lines(app)[0]
        assert "3 orders" in order_lines(app)[0]


async def test_p_pauses_no_child_while_paused_and_p_again_resumes(app: TradedeskApp, clock: ManualClock) -> None:
    engine = app.engine
    async with app.run_test(size=SIZE) as pilot:
        parent = await start_twap(pilot, clock)
        assert len(only_algo(app).child_ids) == 1
        await pilot.press("f3", "p")
        await run(pilot, clock)
        assert engine.algos.get(parent.id).status is AlgoStatus.PAUSED  # type: ignore[union-attr]
        assert "paused 33%" in order_lines(app)[0]
        assert f"twap {parent.id} paused (0.3 of 0.9 {BTC}, 33%)" in log_text(app)

        await run(pilot, clock, 40)  # two slices fall due while paused: none is placed
        assert len(only_algo(app).child_ids) == 1 and "1 order " in order_lines(app)[0]

        await pilot.press("p")
        await run(pilot, clock)
        resumed = only_algo(app)
        assert resumed.status is AlgoStatus.RUNNING and len(resumed.child_ids) == 2  # the overdue slice, at once
        assert "running 66%" in order_lines(app)[0]
        assert f"twap {parent.id} running" in log_text(app)


async def test_the_cancel_key_on_a_parent_row_cancels_the_algorithm_and_its_open_children(
    app: TradedeskApp, clock: ManualClock
) -> None:
    engine = app.engine
    async with app.run_test(size=SIZE) as pilot:
        parent = await start_twap(pilot, clock, child_type="limit")
        [child] = await engine.get_active_orders()  # resting at the bid, no top-level row of its own
        assert child.tag == f"algo:{parent.id}" and app.q(OrdersView).visible_ids() == [f"algo:{parent.id}"]

        await pilot.press("f3", "c")
        await run(pilot, clock)

        assert engine.algos.get(parent.id).status is AlgoStatus.CANCELLED  # type: ignore[union-attr]
        assert (await engine.get_order_by_id(child.id)).status is OrderStatus.CANCELLED  # type: ignore[union-attr]
        assert await engine.get_active_orders() == []
        view = app.q(OrdersView)
        assert view.row_count == 0  # final: it left the "open" view, as orders do
        await pilot.press("f")
        assert view.visible_ids() == [f"algo:{parent.id}"] and "cancelled 0%" in order_lines(app)[0]
        assert f"twap {parent.id} cancelled: cancelled by the trader" in log_text(app)


async def test_the_halt_key_stops_running_algorithms_and_the_row_says_stopped(
    app: TradedeskApp, clock: ManualClock
) -> None:
    engine = app.engine
    async with app.run_test(size=SIZE) as pilot:
        parent = await start_twap(pilot, clock, child_type="limit")
        await pilot.press("ctrl+k")
        await run(pilot, clock)

        assert engine.trading_state is TradingState.HALTED
        assert engine.algos.get(parent.id).status is AlgoStatus.STOPPED  # type: ignore[union-attr]
        assert await engine.get_active_orders() == []
        assert isinstance(app.screen, HaltReportScreen)
        await pilot.press("escape")
        await run(pilot, clock, 60)  # its slices fall due: nothing is placed
        assert len(only_algo(app).child_ids) == 1
        await pilot.press("f3", "f", "enter")
        assert "stopped 0%" in order_lines(app)[0]
        assert "cancelled" in order_lines(app)[1]  # its child, cancelled by the halt
        assert f"twap {parent.id} stopped: halt: HALT key" in log_text(app)


async def test_bad_dialog_input_names_the_field_and_the_cores_refusal_is_shown_as_it_is(
    app: TradedeskApp, clock: ManualClock
) -> None:
    engine = app.engine
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f6")
        await type_text(pilot, "abc")
        await pilot.press("enter")
        await pilot.pause()
        screen = dialog(app)
        assert screen.error_text.splitlines() == [
            "Amount: not a number: 'abc'", "Duration: required", "Slices: required"]
        amount = dialog_input(app, "algo-amount")
        assert amount.has_class("-invalid") and app.focused is amount
        assert screen.query_one("#label-algo-amount").has_class("-invalid")

        amount.value = "0.05"
        dialog_input(app, "algo-twap-duration").value = "-5"
        dialog_input(app, "algo-twap-slices").value = "2.5"
        dialog_input(app, "algo-side").value = "long"
        await pilot.press("enter")
        await pilot.pause()
        assert screen.error_text.splitlines() == [
            "Side: buy or sell, got 'long'", "Duration: must be > 0, got -5", "Slices: a whole number >= 1, got '2.5'"]
        assert not amount.has_class("-invalid")

        # Well-formed, but the core refuses it: its words, in the dialog, which stays open.
        dialog_input(app, "algo-side").value = "b"
        dialog_input(app, "algo-twap-duration").value = "60"
        dialog_input(app, "algo-twap-slices").value = "1000"
        await pilot.press("enter")
        await run(pilot, clock)
        assert app.screen is screen
        assert screen.error_text == ("twap: 1000 slices of 0.05 are 0 each, below the venue's minimum 0.0001: "
                                     "use fewer slices")
        assert screen.error_text in log_text(app)
        assert engine.algos.list() == []

        # Another kind: its own fields, checked by the core against the amount.
        screen.query_one("#algo-kind", Select).value = "iceberg"
        await pilot.pause()
        assert not screen.query_one("#algo-params-twap").display and screen.query_one("#algo-params-iceberg").display
        dialog_input(app, "algo-iceberg-visible").value = "0.1"
        await pilot.press("enter")
        await pilot.pause()
        assert screen.error_text == "Price: required"
        dialog_input(app, "algo-iceberg-visible").value = "0.5"
        dialog_input(app, "algo-iceberg-price").value = "50990"
        await pilot.press("enter")
        await run(pilot, clock)
        assert screen.error_text == "iceberg: visible amount 0.5 is above the total 0.05"
        assert engine.algos.list() == []

        await pilot.press("escape")
        assert app.screen is app.main_screen
        assert engine.algos.list() == [] and await engine.get_orders() == []


async def test_a_restart_shows_what_it_did_to_the_algorithms(tmp_path: Path, clock: ManualClock) -> None:
    db = tmp_path / "j.sqlite"
    app = make_app(db, clock)
    async with app.run_test(size=SIZE) as pilot:
        parent = await start_twap(pilot, clock, child_type="limit")
        await pilot.press("ctrl+q")
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("l")  # quit, leave the orders working
        await until(pilot, lambda: app.return_code is not None)

    app = make_app(db, clock)  # algos.on_restart is "stop" by default
    try:
        async with app.run_test(size=SIZE) as pilot:
            await run(pilot, clock)
            note = f"twap {parent.id} stopped at restart (algos.on_restart = stop); 1 open child order cancelled"
            assert log_text(app).count(note) == 1  # said once (the start's notices reach the console)
            view = app.q(OrdersView)
            await pilot.press("f3", "f", "enter")
            [child] = await app.engine.algos.children(parent.id)
            assert view.visible_ids() == [f"algo:{parent.id}", child.id]  # the journaled child, back under it
            assert "stopped 0%" in order_lines(app)[0] and "cancelled" in order_lines(app)[1]
    finally:
        await app.engine.close()


async def test_a_narrow_pane_keeps_the_marker_and_the_progress(app: TradedeskApp, clock: ManualClock) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await start_twap(pilot, clock)
        await run(pilot, clock, 20)
        # Symbol, Side, Amount, Price, Status: the marker leads the symbol, the figure outlives the word.
        assert row(app) == ["▸BTC/USDT", "buy", "0.9", "runnin", "66%"]


async def test_help_lists_the_algorithm_keys(app: TradedeskApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        table = app.screen.query_one("#help-table", DataTable)
        rows = [tuple(str(c) for c in table.get_row_at(i)) for i in range(table.row_count)]
        assert ("everywhere", "f6", "Algo", "new_algo") in rows
        assert ("orders", "p", "Pause/resume algo", "orders.pause_algo") in rows
        assert ("orders", "enter,space", "Expand algo", "orders.expand_algo") in rows
        assert "Cancel act on the whole algorithm" in str(app.screen.query_one("#help-algos", Static).content)


# -- the pane alone: children that arrive before their parent -------------------------------------


class PaneApp(App[None]):
    def compose(self) -> ComposeResult:
        yield OrdersView()


async def test_children_seen_before_their_parent_move_under_it(engine: Engine, clock: ManualClock) -> None:
    parent = await engine.algos.start_twap(BTC, "buy", D("0.9"), duration=60, slices=3)
    await engine_settle(engine)
    clock.advance(20)
    await engine_settle(engine)
    kids = await engine.algos.children(parent.id)
    other = await engine.place_order(
        OrderRequest(symbol=BTC, side="sell", type="market", amount=D("0.1")))  # type: ignore[arg-type]
    app = PaneApp()
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(OrdersView)
        view.filter = "all"
        view.upsert([*kids, other])
        await pilot.pause()
        assert set(view.visible_ids()) == {*(k.id for k in kids), other.id}  # no parent known yet: top-level
        view.upsert_algos([engine.algos.get(parent.id)])  # type: ignore[list-item]
        await pilot.pause()
        assert view.visible_ids() == [other.id, f"algo:{parent.id}"]  # newest first; the children folded
        view.focus()
        await pilot.press("down", "enter")
        assert view.visible_ids() == [other.id, f"algo:{parent.id}", *(k.id for k in kids)]
