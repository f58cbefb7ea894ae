"""The stats screen (f5), driven through Pilot: the figures it shows, the period chooser, the CSV
export and the way back. The market never moves by itself (``run_loops=False``)."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator
from decimal import Decimal as D
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Sparkline, Static, Tabs

from console.app import TradedeskApp
from core import Engine, ManualClock
from widgets.stats_screen import StatsScreen, money

SIZE = (160, 45)


@pytest.fixture
async def app(tmp_path: Path, clock: ManualClock) -> AsyncIterator[TradedeskApp]:
    engine = Engine.paper(db=tmp_path / "j.sqlite", seed=7, clock=clock)
    app = TradedeskApp(engine, run_loops=False, flush_interval=0, clock_interval=3600)
    yield app
    await app.engine.close()


async def finish(pilot: Pilot, group: str) -> None:
    await pilot.pause()
    workers = [w for w in pilot.app.workers if w.group == group and not w.is_finished]
    if workers:
        await pilot.app.workers.wait_for_complete(workers)
    await pilot.pause()


def figure(screen: StatsScreen, table: str, key: str) -> str:
    return str(screen.query_one(f"#{table}", DataTable).get_row(key)[1])


async def test_stats_screen_shows_the_figures_and_changes_period(app: TradedeskApp, clock: ManualClock,
                                                                   tmp_path: Path) -> None:
    async with app.run_test(size=SIZE) as pilot:
        engine = app.engine
        # day 1: a BTC round trip (bought and sold at market: it loses the spread and two fees)
        await engine.place_market_order("BTC/USDT", "buy", D("0.1"))
        await engine.place_market_order("BTC/USDT", "sell", D("0.1"))
        btc = engine.ledger.position("BTC/USDT")
        clock.advance(2 * 86_400)
        # day 3: an ETH long, still open
        await engine.place_market_order("ETH/USDT", "buy", D("1"))
        eth_fee = engine.ledger.position("ETH/USDT").fees

        await pilot.press("f5")
        await finish(pilot, "stats")
        screen = app.screen
        assert isinstance(screen, StatsScreen)
        assert str(screen.query_one("#stats-title", Static).content) == "Stats — All"
        assert figure(screen, "stats-summary", "trips") == "1 / 1"
        assert figure(screen, "stats-summary", "win_rate") == "0.0%  (0 W, 1 L)"
        # net PnL is what the account lost: the BTC trip's realized PnL and every fee
        net = btc.realized_pnl - btc.fees - eth_fee
        assert net < 0 and engine.account_status().balance == D(100_000) + net
        assert figure(screen, "stats-summary", "net") == money(net)
        assert figure(screen, "stats-summary", "avg_loss") == money(btc.realized_pnl - btc.fees)
        assert figure(screen, "stats-execution", "orders") == "3 / 3"
        assert figure(screen, "stats-execution", "maker") == "0.0%"  # market orders take liquidity
        assert screen.query_one("#stats-daily", DataTable).row_count == 3  # days 1, 2 (no trades) and 3
        assert screen.query_one("#stats-trips", DataTable).row_count == 2
        assert screen.query_one("#stats-orders", DataTable).row_count == 3
        curve = screen.query_one("#stats-equity", Sparkline).data
        assert curve and curve[0] == 100_000 and curve[-1] == pytest.approx(float(D(100_000) + net))

        await pilot.press("1")  # today: only the ETH buy
        await pilot.pause()
        assert screen.query_one(Tabs).active == "today"
        assert str(screen.query_one("#stats-title", Static).content) == "Stats — Today since 2026-01-07 00:00 UTC"
        assert figure(screen, "stats-summary", "trips") == "0 / 1"
        assert figure(screen, "stats-summary", "net") == money(-eth_fee)
        assert figure(screen, "stats-execution", "orders") == "1 / 1"
        assert screen.query_one("#stats-orders", DataTable).row_count == 1

        await pilot.press("4")
        await pilot.pause()
        assert figure(screen, "stats-summary", "trips") == "1 / 1"

        await pilot.press("e")  # export what is on screen (all) next to the journal
        await finish(pilot, "stats-export")
        folder = tmp_path / "exports" / "20260107-093000"
        assert [p.name for p in screen.exported] == ["orders.csv", "fills.csv", "round_trips.csv"]
        assert all(p.parent == folder for p in screen.exported)
        with (folder / "orders.csv").open(newline="") as fh:
            assert len(list(csv.DictReader(fh))) == 3
        assert str(folder) in str(screen.query_one("#stats-status", Static).content)

        await pilot.press("escape")
        assert not isinstance(app.screen, StatsScreen)


async def test_stats_with_no_trades_says_so(app: TradedeskApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f5")
        await finish(pilot, "stats")
        screen = app.screen
        assert isinstance(screen, StatsScreen)
        assert figure(screen, "stats-summary", "trips") == "0 / 0"
        assert figure(screen, "stats-summary", "sharpe") == "—"
        assert str(screen.query_one("#stats-equity-label", Static).content) == "Equity: no fills in this period"
        await pilot.press("f5")  # f5 again goes back too
        assert not isinstance(app.screen, StatsScreen)


async def test_on_an_80_column_terminal_the_summary_values_stay_on_screen(app: TradedeskApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f5")
        await finish(pilot, "stats")
        screen = app.screen
        assert isinstance(screen, StatsScreen)
        summary = screen.query_one("#stats-summary", DataTable)
        # Figure and Value both fit: the top row scrolls sideways rather than squeezing the tables
        assert summary.region.x + sum(c.get_render_width(summary) for c in summary.columns.values()) <= 80
        assert summary.region.width >= 46
        assert screen.query_one("#stats-top").max_scroll_x > 0  # the execution table is reachable
