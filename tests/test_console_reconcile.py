"""The reconciliation view and the account totals, driven by keys through Textual's Pilot.

The adopted external order comes from the loopback Binance server (another client places it
while the desk is down); the paper tests use the simulated market. Nothing waits on the wall
clock: action workers are awaited and the bridge is flushed by hand (``settle``).
"""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from console.app import TradedeskApp
from core import Engine, ManualClock
from widgets.account_summary import AccountSummary
from widgets.orders_view import OrdersView
from widgets.reconcile_view import IgnoreReasonScreen, ReconcileScreen

from .loopback.binance import LoopbackBinance
from .test_ccxt_venue import live
from .test_console_flows import QUIET_CLOCK, SIZE, log_text, market, settle, type_text
from .test_reconcile_ignore import place_elsewhere

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def desk(engine: Engine) -> TradedeskApp:
    return TradedeskApp(engine, run_loops=False, flush_interval=0, clock_interval=QUIET_CLOCK)


def view_rows(app: TradedeskApp) -> list[tuple[str, ...]]:
    table = app.screen.query_one(DataTable)
    return [tuple(str(c) for c in table.get_row_at(i)) for i in range(table.row_count)]


def view_status(app: TradedeskApp) -> str:
    return str(app.screen.query_one("#reconcile-status", Static).content)


async def test_reconcile_on_demand_on_the_sim_venue_finds_nothing(tmp_path: Path, clock: ManualClock) -> None:
    engine = Engine.paper(db=tmp_path / "j.sqlite", seed=7, clock=clock)
    app = desk(engine)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("ctrl+r")
            await pilot.pause()
            assert isinstance(app.screen, ReconcileScreen)
            assert view_rows(app) == [("paper", "not run", "-", "not reconciled since start-up: r reconciles now", "")]

            await pilot.press("r")
            await settle(pilot)
            assert view_rows(app) == [("paper", "agrees", "-", "nothing to reconcile: the journal and the venue agree", "")]
            assert view_status(app) == "reconciled paper: nothing to reconcile"
            assert "reconciled paper: nothing to reconcile" in log_text(app)
            assert [e["kind"] for e in await engine.journal.events()].count("reconciled") == 1  # type: ignore[union-attr]

            await pilot.press("escape")
            assert not isinstance(app.screen, ReconcileScreen)
    finally:
        await engine.close()


async def test_an_adopted_external_order_is_kept_then_ignored_from_the_view(tmp_path: Path) -> None:
    async with LoopbackBinance() as server:
        await place_elsewhere(server)  # while the desk is down
        engine = live(server, tmp_path / "j.sqlite")
        app = desk(engine)
        try:
            async with app.run_test(size=SIZE) as pilot:
                [external] = [o for o in await engine.get_active_orders() if o.tag == "external"]
                assert app.q(OrdersView).visible_ids() == [external.id]  # adopted at start-up, shown
                await pilot.press("ctrl+r")
                await pilot.pause()
                detail = "BTC/USDT sell 0.01 @ 52000  client id otherdesk1"
                assert view_rows(app) == [("binance", "adopted", external.id, detail, "tracking")]

                await pilot.press("a")
                await settle(pilot)
                assert view_rows(app)[0][4] == "kept"
                assert f"keeping {external.id} (adopted from the venue) tracked" in log_text(app)

                await pilot.press("i")
                await pilot.pause()
                assert isinstance(app.screen, IgnoreReasonScreen)
                await pilot.press("enter")  # no reason: refused, the dialog stays
                assert isinstance(app.screen, IgnoreReasonScreen)
                assert "a reason is needed" in str(app.screen.query_one("#ignore-error", Static).content)
                await type_text(pilot, "other desk")
                await pilot.press("enter")
                await settle(pilot)

                assert isinstance(app.screen, ReconcileScreen)
                assert view_rows(app)[0][4] == "ignored: other desk"
                assert engine.ignored_orders() == {external.id: "other desk"}
                assert await engine.get_active_orders() == []
                assert app.q(OrdersView).order(external.id) is None  # gone from the orders pane
                assert f"ignoring {external.id} (BTC/USDT sell 0.01 on binance): other desk; it stays open" in log_text(app)
                assert server.order_by_client_id("otherdesk1").is_open  # type: ignore[union-attr]

                await pilot.press("r")  # reconciling again: still at the venue, ignored, not adopted again
                await settle(pilot)
                assert [(r[1], r[2]) for r in view_rows(app)] == [("ignored", external.id)]
        finally:
            await engine.close()


async def test_the_summary_shows_the_selected_account_beside_the_total(tmp_path: Path, clock: ManualClock) -> None:
    config = tmp_path / "desk.toml"
    config.write_text('[accounts.main]\nexchange = "sim"\n[accounts.hedge]\nexchange = "sim"\nseed = 9\n')
    engine = Engine.from_config(config, db=tmp_path / "j.sqlite", clock=clock)
    app = desk(engine)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await engine.place_order(market("BTC/USDT", "0.5").model_copy(update={"account": "hedge"}))
            await settle(pilot)
            main, hedge = engine.account_status("main"), engine.account_status("hedge")
            assert hedge.open_positions == 1 and hedge.exposure > 0

            def figures() -> list[str]:
                text = str(app.q(AccountSummary).query_one("#acct-figures", Static).content)
                return [" ".join(line.split()) for line in text.splitlines()]

            def money(value: D) -> str:
                return f"{value:,.2f}"

            lines = figures()
            assert lines[0] == "USDT main All 2"
            assert lines[1] == f"Equity {money(main.equity)} {money(main.equity + hedge.equity)}"
            assert lines[3] == f"Exp {money(main.exposure)} {money(hedge.exposure)}"
            assert lines[4] == "Pos 0 1"

            app.q(OrdersView).focus()
            app.main_screen.query_one("#in-account").value = "hedge"  # type: ignore[attr-defined]
            await pilot.pause()
            lines = figures()
            assert lines[0] == "USDT hedge All 2"
            assert lines[4] == "Pos 1 1"
    finally:
        await engine.close()
