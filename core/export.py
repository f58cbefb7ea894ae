"""CSV export of orders, fills and round trips: one file each, a header row, Decimals as plain
strings without trailing zeros or exponent notation, times in ISO 8601 UTC, durations in milliseconds."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from core.analytics import Execution, Period, RoundTrip, TradeRecorder, TradeReport, utc
from core.journal import JournalContents
from core.models import Fill
from core.numbers import clean

ORDER_COLUMNS = (
    "id", "client_order_id", "account", "symbol", "side", "type", "time_in_force", "reduce_only", "amount", "price",
    "stop_price", "status", "filled", "average_price", "fee", "fee_currency", "created_at", "submitted_at", "acked_at",
    "submit_mark", "ack_latency_ms", "first_fill_ms", "complete_fill_ms", "slippage", "slippage_bps", "maker_share",
    "tag", "error",
)
FILL_COLUMNS = (
    "id", "order_id", "client_order_id", "account", "symbol", "side", "amount", "price", "notional", "fee",
    "fee_currency", "base_fee", "liquidity", "timestamp",
)
TRIP_COLUMNS = (
    "account", "symbol", "side", "opened_at", "closed_at", "duration_ms", "max_size", "entry_price", "exit_price",
    "realized_pnl", "fees", "net_pnl", "fills",
)


class ExportError(Exception):
    """The CSV files could not be written; the message names the folder and why."""


def text(value: object) -> str:
    """One CSV cell: Decimal in plain notation, times in ISO UTC, enums by value, None empty."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(clean(value), "f")
    if isinstance(value, datetime):
        return utc(value).isoformat()
    if isinstance(value, timedelta):
        return format(Decimal(value // timedelta(microseconds=1)).scaleb(-3), "f")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(getattr(value, "value", value))


def order_rows(executions: Iterable[Execution]) -> list[list[str]]:
    rows = []
    for e in executions:
        o = e.order
        rows.append([text(v) for v in (
            o.id, o.client_order_id, o.account, o.symbol, o.side, o.type, o.time_in_force, o.reduce_only, o.amount,
            o.price, o.stop_price, o.status, o.filled, o.average_price, o.fee, o.fee_currency, o.created_at,
            o.submitted_at, o.acked_at, o.submit_mark, e.ack_latency, e.first_fill_after, e.complete_fill_after,
            e.slippage, e.slippage_bps, e.maker_share, o.tag, o.error,
        )])
    return rows


def fill_rows(fills: Iterable[Fill]) -> list[list[str]]:
    return [[text(v) for v in (f.id, f.order_id, f.client_order_id, f.account, f.symbol, f.side, f.amount, f.price,
                               f.notional, f.fee, f.fee_currency, f.base_fee, f.liquidity, f.timestamp)]
            for f in fills]


def trip_rows(trips: Iterable[RoundTrip]) -> list[list[str]]:
    return [[text(v) for v in (t.account, t.symbol, t.side, t.opened_at, t.closed_at, t.duration, t.max_size,
                               t.entry_price, t.exit_price, t.realized, t.fees, t.pnl, t.fills)] for t in trips]


def write_csv(out_dir: str | os.PathLike[str], report: TradeReport, fills: Sequence[Fill]) -> list[Path]:
    """Write orders.csv (every order submitted in the report's period, with its execution
    quality), fills.csv (the fills inside the period) and round_trips.csv (the report's trips)
    into ``out_dir``, created if missing. Returns the paths written."""
    out = Path(out_dir).expanduser()
    tables = {
        "orders.csv": (ORDER_COLUMNS, order_rows(report.executions)),
        "fills.csv": (FILL_COLUMNS, fill_rows(f for f in fills if report.period.contains(f.timestamp))),
        "round_trips.csv": (TRIP_COLUMNS, trip_rows(report.trips)),
    }
    try:
        if out.exists() and not out.is_dir():
            raise ExportError(f"{out} is not a folder")
        out.mkdir(parents=True, exist_ok=True)
        if not os.access(out, os.W_OK):
            raise ExportError(f"cannot write to {out}: permission denied")
        written = []
        for name, (header, rows) in tables.items():
            path = out / name
            with path.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(header)
                writer.writerows(rows)
            written.append(path)
    except OSError as exc:
        raise ExportError(f"cannot write to {out}: {exc.strerror or exc}") from None
    return written


def export_journal(contents: JournalContents, out_dir: str | os.PathLike[str], period: Period | None = None,
                   now: datetime | None = None) -> list[Path]:
    """The whole export from what a journal holds (``Journal.load()`` or ``read_journal()``)."""
    recorder = TradeRecorder.from_journal(contents)
    return write_csv(out_dir, recorder.report(period, now=now), recorder.fills)
