"""CSV export from a journal written by a real engine run on the simulated venue: the export
function, the ``tradedesk export`` command, and their errors (a locked journal above all)."""

from __future__ import annotations

import csv
import hashlib
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest

from console.cli import main
from core import Engine, JournalError, ManualClock, OrderRequest, OrderStatus
from core.analytics import Period, TradeRecorder
from core.export import FILL_COLUMNS, ORDER_COLUMNS, TRIP_COLUMNS, export_journal, write_csv
from core.journal_reader import read_journal
from core.models import Fill, Side
from core.venues.sim import SimDials

from .conftest import on_clock, paper

LATENCY = 0.05  # every venue request takes 50 ms on the manual clock


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def header(path: Path) -> list[str]:
    with path.open(newline="") as fh:
        return next(csv.reader(fh))


async def trade(db: Path, clock: ManualClock) -> dict[str, object]:
    """A short session: BTC bought at market, half sold by a resting limit (maker), the rest
    sold at market (one closed round trip); ETH sold short (left open); one limit cancelled."""
    engine = paper(db, clock, dials=SimDials(latency=LATENCY))
    await engine.start()

    async def place(request: OrderRequest):  # noqa: ANN202
        return await on_clock(clock, engine.place_order(request), engine)

    buy = await place(OrderRequest(symbol="BTC/USDT", side="buy", type="market", amount=D("0.4")))
    limit = await place(OrderRequest(symbol="BTC/USDT", side="sell", type="limit", amount=D("0.2"), price=D("51050")))
    engine.venue.market.script("BTC/USDT", ["51060"])  # type: ignore[attr-defined]
    await on_clock(clock, engine.tick(), engine)  # trades through the limit: a maker fill
    clock.advance(3600)
    sell = await place(OrderRequest(symbol="BTC/USDT", side="sell", type="market", amount=D("0.2")))
    short = await place(OrderRequest(symbol="ETH/USDT", side="sell", type="market", amount=D("1")))
    resting = await place(OrderRequest(symbol="BTC/USDT", side="buy", type="limit", amount=D("0.1"), price=D("50000")))
    await on_clock(clock, engine.cancel_order(resting.id), engine)
    btc = engine.ledger.position("BTC/USDT")
    contents = await engine.journal.load()  # type: ignore[union-attr]
    await engine.close()
    assert (await engine.get_order_by_id(limit.id)).status is OrderStatus.FILLED  # type: ignore[union-attr]
    return {"buy": buy, "limit": limit, "sell": sell, "short": short, "resting": resting, "btc": btc,
            "fills": contents.fills, "orders": contents.orders}


async def test_export_writes_orders_fills_and_round_trips(db: Path, clock: ManualClock, tmp_path: Path) -> None:
    run = await trade(db, clock)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    out = tmp_path / "out"
    paths = export_journal(read_journal(db), out)
    assert paths == [out / "orders.csv", out / "fills.csv", out / "round_trips.csv"]
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before  # read-only: the journal is untouched

    assert header(out / "orders.csv") == list(ORDER_COLUMNS)
    orders = {r["id"]: r for r in rows(out / "orders.csv")}
    buy = run["buy"]
    assert len(orders) == len(run["orders"]) == 5  # type: ignore[arg-type]
    row = orders[buy.id]  # type: ignore[attr-defined]
    assert (row["symbol"], row["side"], row["type"], row["status"]) == ("BTC/USDT", "buy", "market", "filled")
    assert row["amount"] == "0.4" and row["average_price"] == str(buy.average_price)  # type: ignore[attr-defined]
    assert row["ack_latency_ms"] == "50.000"  # the sim's 50 ms, on the manual clock
    assert datetime.fromisoformat(row["submitted_at"]) == buy.submitted_at  # type: ignore[attr-defined]
    assert row["submitted_at"].endswith("+00:00")
    # a market buy walks the book above the last price: slippage is positive (worse)
    assert D(row["slippage"]) > 0 and D(row["slippage_bps"]) > 0
    assert row["maker_share"] == "0.000000"
    assert orders[run["limit"].id]["maker_share"] == "1.000000"  # type: ignore[attr-defined]
    assert orders[run["resting"].id]["status"] == "cancelled" and orders[run["resting"].id]["filled"] == "0"  # type: ignore[attr-defined]

    assert header(out / "fills.csv") == list(FILL_COLUMNS)
    fills = rows(out / "fills.csv")
    assert len(fills) == len(run["fills"]) > 3  # type: ignore[arg-type]
    first = run["fills"][0]  # type: ignore[index]
    assert fills[0]["id"] == first.id and D(fills[0]["price"]) == first.price
    assert D(fills[0]["notional"]) == first.amount * first.price and D(fills[0]["fee"]) == first.fee
    assert all("E" not in r["amount"] + r["price"] + r["fee"] for r in fills)  # plain decimals

    assert header(out / "round_trips.csv") == list(TRIP_COLUMNS)
    btc, eth = rows(out / "round_trips.csv")
    position = run["btc"]
    assert (btc["symbol"], btc["side"], btc["max_size"], btc["fills"]) == ("BTC/USDT", "long", "0.4", str(sum(
        1 for f in run["fills"] if f.symbol == "BTC/USDT")))  # type: ignore[attr-defined]
    # the trip's PnL is the ledger's: realized minus fees of the BTC position
    assert D(btc["realized_pnl"]) == position.realized_pnl  # type: ignore[attr-defined]
    assert D(btc["net_pnl"]) == position.realized_pnl - position.fees  # type: ignore[attr-defined]
    assert D(btc["duration_ms"]) >= 3_600_000
    assert (eth["symbol"], eth["side"], eth["closed_at"], eth["exit_price"]) == ("ETH/USDT", "short", "", "")


async def test_export_period_keeps_only_what_happened_in_it(db: Path, clock: ManualClock, tmp_path: Path) -> None:
    run = await trade(db, clock)
    since = run["sell"].submitted_at  # type: ignore[attr-defined]  # after the first hour
    export_journal(read_journal(db), tmp_path, Period(since=since))
    assert sorted(r["id"] for r in rows(tmp_path / "orders.csv")) == sorted(
        o.id for o in (run["sell"], run["short"], run["resting"]))  # type: ignore[attr-defined]
    assert {r["order_id"] for r in rows(tmp_path / "fills.csv")} == {run["sell"].id, run["short"].id}  # type: ignore[attr-defined]
    assert [r["symbol"] for r in rows(tmp_path / "round_trips.csv")] == ["BTC/USDT", "ETH/USDT"]  # BTC closes inside


async def test_cli_export(db: Path, clock: ManualClock, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = await trade(db, clock)
    out = tmp_path / "csv"
    main(["export", "--db", str(db), "--out", str(out)])
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / "orders.csv"), str(out / "fills.csv"), str(out / "round_trips.csv")]
    assert len(rows(out / "fills.csv")) == len(run["fills"])  # type: ignore[arg-type]

    # --until a date includes that day; the whole session is on 2026-01-05
    main(["export", "--db", str(db), "--out", str(out), "--since", "2026-01-05", "--until", "2026-01-05"])
    assert len(rows(out / "fills.csv")) == len(run["fills"])  # type: ignore[arg-type]
    main(["export", "--db", str(db), "--out", str(out), "--since", "2026-01-06"])
    assert rows(out / "fills.csv") == [] and rows(out / "orders.csv") == []


async def test_cli_export_never_imports_the_console(db: Path, clock: ManualClock, tmp_path: Path) -> None:
    await trade(db, clock)
    code = ("import sys; from console.cli import main; "
            f"main(['export', '--db', {str(db)!r}, '--out', {str(tmp_path / 'o')!r}]); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich', 'widgets', 'ccxt')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.splitlines()[-1] == "[]"
    assert (tmp_path / "o" / "fills.csv").exists()


def fails(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    text = str(exit_.value.code) if isinstance(exit_.value.code, str) else capsys.readouterr().err.strip()
    assert exit_.value.code != 0 and "Traceback" not in text and len(text.splitlines()) == 1
    return text


async def test_cli_export_errors_are_one_clear_line(db: Path, clock: ManualClock, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "out")
    assert fails(["export", "--db", str(tmp_path / "none.sqlite"), "--out", out], capsys) == (
        f"tradedesk export: journal {tmp_path / 'none.sqlite'} does not exist")
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    assert fails(["export", "--db", str(other), "--out", out], capsys) == (
        f"tradedesk export: {other} is not a tradedesk journal")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    assert f"{junk} is not a tradedesk journal" in fails(["export", "--db", str(junk), "--out", out], capsys)
    assert "--out" in fails(["export", "--db", str(db)], capsys)  # required
    assert "--since takes a date (YYYY-MM-DD) or an ISO time, got 'yesterday'" in fails(
        ["export", "--db", str(db), "--out", out, "--since", "yesterday"], capsys)
    assert "until (2026-01-02T00:00:00+00:00) must be after since (2026-01-03T00:00:00+00:00)" in fails(
        ["export", "--db", str(db), "--out", out, "--since", "2026-01-03", "--until", "2026-01-01"], capsys)

    await trade(db, clock)
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    assert fails(["export", "--db", str(db), "--out", str(a_file)], capsys) == f"tradedesk export: {a_file} is not a folder"
    assert fails(["export", "--db", str(db), "--out", str(a_file / "sub")], capsys).startswith(
        f"tradedesk export: cannot write to {a_file / 'sub'}: ")


async def test_a_journal_in_use_gives_the_clear_message(engine: Engine, db: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    await engine.place_market_order("BTC/USDT", "buy", D("0.1"))  # the engine holds the lock
    with pytest.raises(JournalError, match="is in use by a running tradedesk; stop it or export from the console"):
        read_journal(db)
    text = fails(["export", "--db", str(db), "--out", str(tmp_path / "out")], capsys)
    assert text == (f"tradedesk export: the journal {db} is in use by a running tradedesk; "
                    "stop it or export from the console (f5 Stats, then e)")
    assert not (tmp_path / "out").exists()


async def test_recorder_from_a_journal_starts_from_the_initial_balance(db: Path, clock: ManualClock) -> None:
    await trade(db, clock)
    report = TradeRecorder.from_journal(read_journal(db)).report()
    assert report.starting_equity == D(100_000)
    assert report.end - report.start >= timedelta(hours=1)  # type: ignore[operator]
    assert report.start.tzinfo is not None and report.start.utcoffset() == UTC.utcoffset(None)  # type: ignore[union-attr]


def test_fills_csv_carries_the_fee_kept_in_the_base_coin(tmp_path: Path) -> None:
    # a spot buy of 1 BTC where the venue kept 0.001 BTC (worth 0.1 USDT) as fee: the CSV keeps
    # both figures, so what was received (amount - base_fee) can be worked out from the file
    when = datetime(2026, 1, 5, 9, tzinfo=UTC)
    bought = Fill(id="T1", order_id="O1", client_order_id="C1", symbol="BTC/USDT", side=Side.BUY, amount=D(1),
                  price=D(100), fee=D("0.1"), base_fee=D("0.001"), timestamp=when)
    plain = bought.model_copy(update={"id": "T2", "base_fee": D(0), "timestamp": when + timedelta(hours=1)})
    recorder = TradeRecorder([bought, plain], starting_equity=D(1000))
    write_csv(tmp_path, recorder.report(), recorder.fills)
    assert "base_fee" in FILL_COLUMNS
    assert [(r["id"], r["fee"], r["fee_currency"], r["base_fee"]) for r in rows(tmp_path / "fills.csv")] == [
        ("T1", "0.1", "USDT", "0.001"), ("T2", "0.1", "USDT", "0")]
