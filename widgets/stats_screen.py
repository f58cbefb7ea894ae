"""F5: trade statistics for a chosen period — summary, per-day PnL, an equity curve, round trips
and execution quality — and CSV export (``e``). The figures come from ``core.analytics``; the
screen only formats them. It reads the journal through the ``load`` callable the app hands it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, HorizontalScroll, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Sparkline, Static, Tab, Tabs
from textual.worker import Worker, WorkerState

from core.analytics import Period, TradeRecorder, TradeReport
from core.export import ExportError, export_journal
from core.journal import JournalContents
from widgets.key_footer import KeyFooter

PERIODS = {"today": "Today", "week": "7 days", "month": "30 days", "all": "All"}
_DAYS = {"week": 7, "month": 30}
CURVE_POINTS = 240  # equity sampled on an even time grid: the sparkline's x axis is time


def period_for(key: str, now: datetime) -> Period:
    if key == "today":
        return Period(since=datetime(now.year, now.month, now.day, tzinfo=UTC))
    if key in _DAYS:
        return Period(since=now - timedelta(days=_DAYS[key]))
    return Period()


def money(value: Decimal | None) -> str:
    return "—" if value is None else f"{value:,.2f}"


def ratio(value: float | None, places: int = 2) -> str:
    return "—" if value is None else f"{value:.{places}f}"


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def span(value: timedelta | None) -> str:
    if value is None:
        return "—"
    seconds = value.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def when(t: datetime | None) -> str:
    return "" if t is None else t.astimezone(UTC).strftime("%m-%d %H:%M")


def sampled_curve(report: TradeReport, points: int = CURVE_POINTS) -> list[float]:
    """The stepped equity curve read at ``points`` evenly spaced times from start to end."""
    curve = report.equity_curve
    if not curve or report.start is None or report.end is None or report.end <= report.start:
        return [float(e) for _, e in curve]
    step = (report.end - report.start) / (points - 1)
    out, i, equity = [], 0, curve[0][1]
    for n in range(points):
        t = report.start + step * n
        while i < len(curve) and curve[i][0] <= t:
            equity = curve[i][1]
            i += 1
        out.append(float(equity))
    out[0] = float(curve[0][1])  # starts from the starting equity, even with fills at the very start
    out[-1] = float(curve[-1][1])  # the last fill counts even when it falls inside the last step
    return out


def summary_rows(r: TradeReport) -> list[tuple[str, str, str]]:
    """(key, figure, value) for the summary table."""
    closed = len(r.closed_trips)
    return [
        ("trips", "Round trips (closed / open)", f"{closed} / {len(r.trips) - closed}"),
        ("win_rate", "Win rate", pct(r.win_rate) + (f"  ({r.wins} W, {r.losses} L)" if closed else "")),
        ("avg_win", "Average win", money(r.avg_win)),
        ("avg_loss", "Average loss", money(r.avg_loss)),
        ("profit_factor", "Profit factor", ratio(r.profit_factor)),
        ("realized", "Realized PnL", money(r.realized)),
        ("fees", "Fees", money(r.fees)),
        ("net", "Net PnL", money(r.total_pnl)),
        ("equity", "Equity start → end", f"{money(r.starting_equity)} → {money(r.ending_equity)}"),
        ("sharpe", "Sharpe (daily, ×√365)", ratio(r.sharpe)),
        ("sortino", "Sortino (daily, ×√365)", ratio(r.sortino)),
        ("drawdown", "Max drawdown", f"{money(r.max_drawdown)}  ({ratio(r.max_drawdown_pct)}%)"),
        ("exposure", "Exposure time", f"{pct(r.exposure)}  ({span(r.exposure_time)})"),
    ]


def execution_rows(r: TradeReport) -> list[tuple[str, str, str]]:
    e = r.execution
    bps = "—" if e.slippage_bps is None else f"{e.slippage_bps} bps"
    return [
        ("orders", "Orders sent / filled", f"{e.orders} / {e.filled_orders}"),
        ("ack", "Submit → ack mean / median / max",
         f"{span(e.ack_latency_mean)} / {span(e.ack_latency_median)} / {span(e.ack_latency_max)}"),
        ("first_fill", "Ack → first fill (median)", span(e.first_fill_median)),
        ("complete_fill", "Ack → full fill (median)", span(e.complete_fill_median)),
        ("slippage", "Slippage vs mark (+ = worse)", f"{money(e.slippage_cost)}  ({bps})"),
        ("exec_fees", "Fees paid", money(e.fees)),
        ("maker", "Maker share (notional)", pct(e.maker_share)),
    ]


class StatsScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,f5", "close", "Back", id="stats.close"),
        Binding("1", "period('today')", "Today", id="stats.today"),
        Binding("2", "period('week')", "7 days", id="stats.week"),
        Binding("3", "period('month')", "30 days", id="stats.month"),
        Binding("4", "period('all')", "All", id="stats.all"),
        Binding("e", "export", "Export CSV", id="stats.export"),
        Binding("r", "reload", "Refresh", id="stats.refresh"),
    ]

    def __init__(self, *, load: Callable[[], Awaitable[JournalContents]], now: Callable[[], datetime],
                 export_dir: Path, period: str = "all") -> None:
        super().__init__(id="stats-screen")
        self._load = load
        self._now = now
        self.export_dir = export_dir
        self.period_key = period
        self.recorder: TradeRecorder | None = None
        self.report: TradeReport | None = None
        self.exported: list[Path] = []

    def compose(self) -> ComposeResult:
        yield Static("Stats", id="stats-title", classes="pane-title")
        yield Tabs(*(Tab(f"{label} [{n}]", id=key) for n, (key, label) in enumerate(PERIODS.items(), 1)),
                   active=self.period_key, id="stats-period")
        with HorizontalScroll(id="stats-top"):  # narrow terminals scroll it (left/right) instead of cutting values off
            yield self._table("stats-summary", "Figure", "Value", cursor="none")
            yield self._table("stats-execution", "Execution", "Value", cursor="none")
            yield self._table("stats-daily", "Day (UTC)", "Net PnL", cursor="none")
        yield Static("", id="stats-equity-label", classes="pane-title")
        yield Sparkline([], id="stats-equity")
        with Horizontal(id="stats-bottom"):
            with Vertical():
                yield Static("Round trips", classes="pane-title")
                yield self._table("stats-trips", "Symbol", "Side", "Opened", "Closed", "Size", "Entry", "Exit",
                                  "Fees", "Net PnL")
            with Vertical():
                yield Static("Orders: execution quality", classes="pane-title")
                yield self._table("stats-orders", "Order", "Symbol", "Side", "Ack", "1st fill", "Full fill",
                                  "Slip bps", "Fees", "Maker")
        yield Static("e export CSV · 1-4 period · r refresh · esc back", id="stats-status")
        yield KeyFooter()

    @staticmethod
    def _table(id: str, *columns: str, cursor: str = "row") -> DataTable[str]:
        table: DataTable[str] = DataTable(id=id, cursor_type=cursor, zebra_stripes=True)  # type: ignore[arg-type]
        table.add_columns(*columns)
        return table

    def on_mount(self) -> None:
        self._reload()

    # -- actions ---------------------------------------------------------------------------------

    def action_close(self) -> None:
        self.app.pop_screen()

    def action_period(self, key: str) -> None:
        self.query_one(Tabs).active = key  # -> TabActivated -> show

    @on(Tabs.TabActivated)
    def _period_chosen(self, event: Tabs.TabActivated) -> None:
        if event.tab.id and event.tab.id != self.period_key:
            self.period_key = event.tab.id
            self.show()

    def action_reload(self) -> None:
        self._reload()

    @work(exclusive=True, name="load stats", group="stats", exit_on_error=False)
    async def _reload(self) -> None:
        self.recorder = TradeRecorder.from_journal(await self._load())
        self.show()

    def action_export(self) -> None:
        self.run_worker(self._export(), name="export CSV", group="stats-export", exit_on_error=False)

    async def _export(self) -> None:
        now = self._now()
        folder = self.export_dir / now.astimezone(UTC).strftime("%Y%m%d-%H%M%S")
        contents = await self._load()
        try:
            paths = await asyncio.to_thread(export_journal, contents, folder, period_for(self.period_key, now), now)
        except ExportError as exc:
            self._say(f"export failed: {exc}", "error")
            return
        self.exported = paths
        self._say(f"exported {', '.join(p.name for p in paths)} ({PERIODS[self.period_key]}) to {folder}")

    def _say(self, text: str, severity: str = "information") -> None:
        self.query_one("#stats-status", Static).update(text)
        self.notify(text, severity=severity, timeout=8)  # type: ignore[arg-type]

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            error = event.worker.error
            self._say(f"stats: {event.worker.name or 'task'} failed: {type(error).__name__}: {error}", "error")

    # -- showing ---------------------------------------------------------------------------------

    def show(self) -> None:
        if self.recorder is None:
            return
        now = self._now()
        r = self.report = self.recorder.report(period_for(self.period_key, now), now=now)
        since = f" since {r.period.since:%Y-%m-%d %H:%M} UTC" if r.period.since else ""
        self.query_one("#stats-title", Static).update(f"Stats — {PERIODS[self.period_key]}{since}")
        with self.app.batch_update():
            self._fill("#stats-summary", summary_rows(r))
            self._fill("#stats-execution", execution_rows(r))
            daily = self.query_one("#stats-daily", DataTable)
            daily.clear()
            for day, pnl in reversed(r.daily):  # newest first
                daily.add_row(day.isoformat(), money(pnl), key=day.isoformat())
            trips = self.query_one("#stats-trips", DataTable)
            trips.clear()
            for n, t in enumerate(reversed(r.trips)):
                trips.add_row(t.symbol, t.side.value, when(t.opened_at), when(t.closed_at) or "open", f"{t.max_size}",
                              f"{t.entry_price}", "" if t.exit_price is None else f"{t.exit_price}", money(t.fees),
                              money(t.pnl), key=str(n))
            orders = self.query_one("#stats-orders", DataTable)
            orders.clear()
            for e in reversed(r.executions):
                orders.add_row(e.order.id, e.order.symbol, e.order.side.value, span(e.ack_latency),
                               span(e.first_fill_after), span(e.complete_fill_after),
                               "—" if e.slippage_bps is None else str(e.slippage_bps), money(e.fees),
                               pct(e.maker_share), key=e.order.id)
            self.query_one("#stats-equity", Sparkline).data = sampled_curve(r)
            self.query_one("#stats-equity-label", Static).update(
                f"Equity (realized) {when(r.start)} → {when(r.end)}: {money(r.starting_equity)} → "
                f"{money(r.ending_equity)}" if r.equity_curve else "Equity: no fills in this period")

    def _fill(self, selector: str, rows: list[tuple[str, str, str]]) -> None:
        table = self.query_one(selector, DataTable)
        table.clear()
        for key, figure, value in rows:
            table.add_row(figure, value, key=key)
