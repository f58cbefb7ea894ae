"""The write-ahead journal (core/journal.py): creation, durability, exact restore, fill
de-duplication, group commit, per-write failure isolation, the append-only audit trail, and
clear refusals at open that never touch the file."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import sqlite3
import sys
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core import journal as journal_module
from core.journal import APP_ID, SCHEMA_VERSION, Journal, JournalError
from core.models import Fill, Liquidity, Order, OrderStatus, OrderType, Side

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


# -- helpers / fixtures ------------------------------------------------------------------------


def make_order(id: str = "o1", *, client_order_id: str | None = None, account: str = "paper", **kw: Any) -> Order:
    fields: dict[str, Any] = {
        "id": id,
        "client_order_id": client_order_id or f"c{id}",
        "account": account,
        "symbol": "BTC/USDT",
        "side": Side.BUY,
        "type": OrderType.LIMIT,
        "amount": Decimal("0.0100"),
        "price": Decimal("65000.50"),
        "created_at": T0,
        "updated_at": T0,
    }
    fields.update(kw)
    return Order(**fields)


def make_fill(id: str = "f1", *, order_id: str = "o1", account: str = "paper", **kw: Any) -> Fill:
    fields: dict[str, Any] = {
        "id": id,
        "order_id": order_id,
        "client_order_id": f"c{order_id}",
        "account": account,
        "symbol": "BTC/USDT",
        "side": Side.BUY,
        "amount": Decimal("0.0050"),
        "price": Decimal("65000.50"),
        "fee": Decimal("0.1625"),
        "liquidity": Liquidity.MAKER,
        "timestamp": T0 + timedelta(seconds=1),
    }
    fields.update(kw)
    return Fill(**fields)


def snapshot(p: Path) -> tuple[str, int, int]:
    st = p.stat()
    return hashlib.sha256(p.read_bytes()).hexdigest(), st.st_size, st.st_mtime_ns


def sidecars(p: Path) -> list[str]:
    return sorted(x.name for x in p.parent.iterdir() if x.name != p.name and x.name.startswith(p.name))


async def _shutdown(j: Journal) -> None:
    try:
        await j.close()
    except BaseException:  # the writer task died: still release the connection (its thread)
        await j._db.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite"


@pytest.fixture
async def opener() -> AsyncIterator[Callable[..., Any]]:
    """``await opener(path)`` opens a Journal that is closed at teardown whatever happens."""
    opened: list[Journal] = []

    async def _open(p: Path, **kw: Any) -> Journal:
        j = await Journal.open(p, **kw)
        opened.append(j)
        return j

    yield _open
    for j in opened:
        await _shutdown(j)


@pytest.fixture
async def journal(path: Path, opener: Callable[..., Any]) -> Journal:
    return await opener(path)


# -- creation ------------------------------------------------------------------------------------


async def test_new_journal_is_wal_with_schema_version_and_meta(path: Path) -> None:
    j = await Journal.open(path)
    try:
        assert path.exists()
        assert (path.parent / (path.name + "-wal")).exists(), "WAL file should exist while the journal is open"
        assert j.meta["app"] == APP_ID
        token = j.meta["token"]
        assert len(token) == 6 and int(token, 16) >= 0
        async with j._db.execute("PRAGMA journal_mode") as cur:
            assert (await cur.fetchone())[0].lower() == "wal"
        async with j._db.execute("PRAGMA user_version") as cur:
            assert (await cur.fetchone())[0] == SCHEMA_VERSION
    finally:
        await j.close()
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert dict(con.execute("SELECT key, value FROM meta")) == {"app": APP_ID, "token": token}
    finally:
        con.close()


async def test_given_token_is_stored_and_kept_on_reopen(path: Path, opener: Callable[..., Any]) -> None:
    j = await Journal.open(path, token="abc123")
    assert j.meta["token"] == "abc123"
    await j.close()
    j2 = await opener(path, token="ffffff")  # an existing journal keeps its own token
    assert j2.meta == {"app": APP_ID, "token": "abc123"}
    assert (await j2.load()).meta["token"] == "abc123"


async def test_close_is_idempotent_and_write_after_close_is_refused(path: Path) -> None:
    j = await Journal.open(path)
    await j.close()
    await j.close()
    with pytest.raises(JournalError, match="closed"):
        j.write("late", ts="t")


# -- durability ------------------------------------------------------------------------------------


async def test_awaited_write_is_on_disk_while_journal_still_open(journal: Journal, path: Path, tmp_path: Path) -> None:
    """A crash right after ``await write`` must not lose it: copy the files as they are on disk
    at that moment (the journal still open, never closed) and read the copy."""
    order = make_order("o1")
    await journal.write("order_created", ts="2024-05-01T12:00:00Z", order=order)
    assert journal.commits >= 1
    crash = tmp_path / "crash"
    crash.mkdir()
    shutil.copyfile(path, crash / path.name)
    wal = path.parent / (path.name + "-wal")
    if wal.exists():
        shutil.copyfile(wal, crash / wal.name)
    con = sqlite3.connect(crash / path.name)
    try:
        assert con.execute("SELECT kind, order_id FROM events").fetchall() == [("order_created", "o1")]
        (data,) = con.execute("SELECT data FROM orders WHERE id='o1'").fetchone()
        assert Order.model_validate_json(data) == order
    finally:
        con.close()


async def test_awaited_write_survives_close_and_reopen(path: Path, opener: Callable[..., Any]) -> None:
    j = await Journal.open(path)
    order = make_order("o1")
    await j.write("order_created", ts="t1", order=order)
    await j.close()
    j2 = await opener(path)
    contents = await j2.load()
    assert contents.orders == [order]
    assert contents.event_count == 1


# -- exact restore ---------------------------------------------------------------------------------


async def test_reopen_restores_projections_and_events_exactly(path: Path, opener: Callable[..., Any]) -> None:
    j = await Journal.open(path, token="a1b2c3")
    a0 = make_order("o1")
    a1 = a0.model_copy(update={"status": OrderStatus.OPEN, "venue_order_id": "v-1", "revision": 1,
                               "acked_at": T0 + timedelta(milliseconds=5), "updated_at": T0 + timedelta(milliseconds=5)})
    f1 = make_fill("f1", order_id="o1")
    a2 = a1.model_copy(update={"status": OrderStatus.PARTIALLY_FILLED, "filled": Decimal("0.0050"), "revision": 2,
                               "average_price": Decimal("65000.50"), "fee": Decimal("0.1625"), "fee_currency": "USDT"})
    f2 = make_fill("f2", order_id="o1", price=Decimal("64999.00"), liquidity=Liquidity.TAKER, fee=Decimal("0.2"))
    a3 = a2.model_copy(update={"status": OrderStatus.FILLED, "filled": Decimal("0.0100"), "revision": 3,
                               "average_price": Decimal("64999.75"), "fee": Decimal("0.3625")})
    b0 = make_order("o2", side=Side.SELL, type=OrderType.MARKET, price=None, tag="hedge")
    b1 = b0.model_copy(update={"status": OrderStatus.CANCELLED, "error": "user cancel", "revision": 1})
    c0 = make_order("o3", account="sub", client_order_id="co1", type=OrderType.STOP, price=None,
                    stop_price=Decimal("60000"), reduce_only=True, leverage=Decimal("3"))

    pos_v1 = {"symbol": "BTC/USDT", "qty": "0.0050", "cost": "325.0025", "mark": "65000.50"}
    pos_v2 = {"symbol": "BTC/USDT", "qty": "0.0100", "cost": "650.0000", "mark": "64999.00"}
    eth = {"symbol": "ETH/USDT", "qty": "-1", "cost": "-3000", "mark": "3000"}
    ledger_v1 = {"account": "paper", "balance": "100000", "fees": "0"}
    ledger_v2 = {"account": "paper", "balance": "99999.6375", "fees": "0.3625"}
    ledger_sub = {"account": "sub", "balance": "500", "fees": "0"}

    written = [
        ("account_opened", {"ledger": ledger_v1}),
        ("account_opened", {"ledger": ledger_sub, "account": "sub"}),
        ("order_created", {"order": a0}),
        ("order_created", {"order": b0}),
        ("order_acked", {"order": a1}),
        ("fill", {"fill": f1, "positions": [pos_v1]}),
        ("order_partially_filled", {"order": a2}),
        ("fill", {"fill": f2, "positions": [pos_v2, eth], "ledger": ledger_v2}),
        ("order_filled", {"order": a3}),
        ("order_cancelled", {"order": b1, "data": {"reason": "user"}}),
        ("order_created", {"order": c0}),
        ("halt", {"state": {"trading_state": "HALTED", "trading_state_reason": "drawdown"}}),
        ("resume", {"state": {"trading_state": "ACTIVE"}}),
    ]
    # Some awaited one by one, the rest queued together: both paths end in the same projection.
    for kind, kw in written[:5]:
        await j.write(kind, ts=f"ts-{kind}", **kw)
    await asyncio.gather(*(j.write(kind, ts=f"ts-{kind}", **kw) for kind, kw in written[5:]))
    await j.close()

    j2 = await opener(path)
    c = await j2.load()
    assert c.meta == {"app": APP_ID, "token": "a1b2c3"}
    assert c.orders == [a3, b1, c0]  # latest version of each order, in first-seen order
    assert [type(o) for o in c.orders] == [Order] * 3
    assert c.fills == [f1, f2]
    assert c.positions == {"paper": [pos_v2, eth]}
    assert c.accounts == {"paper": ledger_v2, "sub": ledger_sub}
    assert c.state == {"trading_state": "ACTIVE", "trading_state_reason": "drawdown"}
    assert c.event_count == len(written)

    events = await j2.events()
    assert [e["kind"] for e in events] == [k for k, _ in written]
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    assert len({e["seq"] for e in events}) == len(written)
    assert [e["order_id"] for e in events] == [None, None, "o1", "o2", "o1", "o1", "o1", "o1", "o1", "o2", "o3", None, None]
    # account: the explicit argument, else the order's / fill's; none for a bare ledger or state write
    assert [e["account"] for e in events] == [None, "sub"] + ["paper"] * 8 + ["sub", None, None]
    assert events[2]["data"] == a0.model_dump(mode="json")
    assert Fill.model_validate(events[5]["data"]) == f1
    assert events[9]["data"] == {"order": b1.model_dump(mode="json"), "reason": "user"}
    assert [e["ts"] for e in events] == [f"ts-{k}" for k, _ in written]
    assert await j2.events(order_id="o2") == [events[3], events[9]]
    assert [e["kind"] for e in await j2.events(limit=2)] == ["halt", "resume"]


# -- fills -----------------------------------------------------------------------------------------


async def test_fills_are_deduplicated_by_account_and_id(journal: Journal) -> None:
    first = make_fill("t-1")
    replay = make_fill("t-1", price=Decimal("1"), amount=Decimal("9"))  # same venue trade id, replayed
    other_account = make_fill("t-1", account="sub")
    # across commits ...
    await journal.write("fill", ts="1", fill=first)
    await journal.write("fill", ts="2", fill=replay)
    # ... and inside one batch
    results = await asyncio.gather(
        journal.write("fill", ts="3", fill=replay),
        journal.write("fill", ts="4", fill=other_account),
        journal.write("fill", ts="5", fill=other_account),
        return_exceptions=True,
    )
    assert results == [None, None, None]
    c = await journal.load()
    assert c.fills == [first, other_account]  # the first one seen wins, per account
    assert c.event_count == 5  # the audit trail still records every delivery
    async with journal._db.execute("SELECT account, id FROM fills ORDER BY rowid") as cur:
        assert await cur.fetchall() == [("paper", "t-1"), ("sub", "t-1")]


# -- group commit ----------------------------------------------------------------------------------


async def test_group_commit_1000_writes(journal: Journal) -> None:
    base_commits, base_writes = journal.commits, journal.writes
    futures = [
        journal.write("tick", ts=f"{i:04d}", data={"i": i}, order=make_order(f"o{i % 10}", revision=i))
        for i in range(1000)
    ]
    assert not any(f.done() for f in futures)  # nothing is committed before the loop runs
    results = await asyncio.gather(*futures)
    assert results == [None] * 1000
    assert journal.writes - base_writes == 1000
    assert journal.commits - base_commits < 100
    c = await journal.load()
    assert c.event_count == 1000
    assert [o.revision for o in c.orders] == list(range(990, 1000))  # last write per order wins
    events = await journal.events(limit=5000)
    assert [e["data"]["i"] for e in events] == list(range(1000))  # commit order == write order


async def test_one_batch_of_every_kind_of_row_lands_whole_and_in_write_order(journal: Journal) -> None:
    """A batch binds up to 128 rows per statement (one transaction of its own); a batch with
    more is one transaction of several. Every row still lands, and a later row for the same key
    wins, as it would written one by one."""
    n = 70  # 420 rows: three full statements and a remainder
    futures = [
        journal.write(
            "fill", ts=f"{i:03d}", fill=make_fill(f"t-{i}", order_id=f"o{i % 3}"),
            positions=[{"symbol": f"S{i % 5}/USDT", "qty": str(i)}],
            ledger={"account": f"acct{i % 2}", "cash": str(i)},
            state={"trading_state": "ACTIVE", "seen": str(i)},
            orders=[make_order(f"o{i % 3}", revision=i)],
        )
        for i in range(n)
    ]
    assert await asyncio.gather(*futures) == [None] * n
    assert journal.commits < n  # grouped, not one commit per write
    c = await journal.load()
    assert c.event_count == n
    assert [f.id for f in c.fills] == [f"t-{i}" for i in range(n)]
    assert {o.id: o.revision for o in c.orders} == {"o0": 69, "o1": 67, "o2": 68}
    assert {p["symbol"]: p["qty"] for p in c.positions["paper"]} == {f"S{k}/USDT": str(65 + k) for k in range(5)}
    assert {a: d["cash"] for a, d in c.accounts.items()} == {"acct0": "68", "acct1": "69"}
    assert c.state == {"trading_state": "ACTIVE", "seen": "69"}
    assert [e["ts"] for e in await journal.events(limit=500)] == [f"{i:03d}" for i in range(n)]


def _counting(monkeypatch: pytest.MonkeyPatch, obj: object, name: str) -> list[int]:
    """Wrap ``obj.name`` to count its calls: the returned list's one item."""
    calls = [0]
    original = getattr(obj, name)

    def counted(*args: Any) -> Any:
        calls[0] += 1
        return original(*args)

    monkeypatch.setattr(obj, name, counted)
    return calls


async def test_writes_made_during_a_commit_go_in_the_next_without_a_hop_to_the_loop(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database thread commits what came while it was committing as soon as it is done:
    the same job goes on, no new one is queued, so the loop never has to hand it over."""
    await journal.flush()
    starts = _counting(monkeypatch, journal, "_start_drain")
    entered, proceed = threading.Event(), threading.Event()

    def hold(statement: str) -> None:  # in the database thread, as the first commit starts
        if "journal_rows" in statement and not proceed.is_set():
            entered.set()
            proceed.wait(10)

    await journal._db._execute(journal._db._conn.set_trace_callback, hold)
    base = journal.commits
    first = journal.write("first", ts="1", order=make_order("o1"))
    assert await asyncio.to_thread(entered.wait, 10)
    later = [journal.write("later", ts=str(i), order=make_order(f"o{i}")) for i in range(2, 6)]
    proceed.set()
    await asyncio.gather(first, *later)
    assert starts == [1]
    assert journal.commits - base == 2  # the first alone, the four that came meanwhile together
    await journal._db._execute(journal._db._conn.set_trace_callback, None)
    assert [e["ts"] for e in await journal.events()] == ["1", "2", "3", "4", "5"]


async def test_a_failure_of_the_writer_itself_fails_its_writes_and_the_next_ones_go_through(
    journal: Journal, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise RuntimeError("writer bug")

    monkeypatch.setattr(journal, "_drain_in_thread", broken)
    with caplog.at_level("ERROR", logger="core.journal"):
        results = await asyncio.gather(journal.write("a", ts="1"), journal.write("b", ts="2"), return_exceptions=True)
    assert [type(r) for r in results] == [JournalError, JournalError]
    assert "writer bug" in str(results[0]) and "the writer failed" in caplog.text
    monkeypatch.undo()
    await journal.write("c", ts="3")
    assert [e["kind"] for e in await journal.events()] == ["c"]


async def test_a_version_1_journal_is_migrated_and_keeps_its_records(path: Path) -> None:
    """Version 2 added the view the writer commits through; a journal from before opens,
    keeps every record, and takes new writes."""
    order = make_order("o1")
    con = sqlite3.connect(path)
    for statement in journal_module._MIGRATIONS[1]:
        con.execute(statement)
    con.execute("INSERT INTO meta(key, value) VALUES ('app', ?), ('token', 'abc123')", (APP_ID,))
    con.execute("INSERT INTO events(ts, kind, account, order_id, data) VALUES ('1', 'order_created', 'paper', 'o1', ?)",
                (order.model_dump_json(),))
    con.execute("INSERT INTO orders(id, account, client_order_id, symbol, status, data) VALUES (?, ?, ?, ?, ?, ?)",
                (order.id, order.account, order.client_order_id, order.symbol, order.status.value, order.model_dump_json()))
    con.execute("PRAGMA user_version=1")
    con.commit()
    con.close()
    j = await Journal.open(path)
    try:
        assert j.meta["token"] == "abc123"
        assert (await j.load()).orders == [order]
        moved = order.model_copy(update={"status": OrderStatus.OPEN, "revision": 1})
        await j.write("order_acked", ts="2", order=moved)
        c = await j.load()
        assert c.orders == [moved] and c.event_count == 2
    finally:
        await j.close()
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    finally:
        con.close()


async def test_a_write_is_committed_once_whatever_its_values(journal: Journal) -> None:
    """Nothing may fail after a batch's COMMIT: a failure there would send the batch back through
    the write-by-write retry and commit it twice (a state value that is not a str once did)."""
    results = await asyncio.gather(
        journal.write("a", ts="1", order=make_order("o1")),
        journal.write("b", ts="2", state={"count": 3}),  # type: ignore[dict-item]
        journal.write("c", ts="3", data={"x": 1}),
    )
    assert results == [None, None, None]
    assert [e["kind"] for e in await journal.events()] == ["a", "b", "c"]
    assert (await journal.load()).state == {"count": "3"}


def test_the_journal_json_is_the_models_own_json() -> None:
    """The journal calls the models' serializer directly (core.journal._json): its text must stay
    byte for byte model_dump_json()'s, for every field set and unset, since both the events and
    the projections store it."""
    full = make_order(
        "o9", venue_order_id="v9", stop_price=Decimal("64000"), time_in_force="IOC", reduce_only=True,
        leverage=Decimal("3"), tag="t\u00e9st \"q\"", status=OrderStatus.PARTIALLY_FILLED, filled=Decimal("0.005"),
        average_price=Decimal("65000.25"), fee=Decimal("0.01"), fee_currency="USDT", submitted_at=T0,
        acked_at=T0 + timedelta(microseconds=1), submit_mark=Decimal("64999.9"), error="e", emulated=True,
        revision=7,
    )
    for model in (make_order(), full, make_fill(), make_fill(base_fee=Decimal("0.00001"), fee_currency="BTC")):
        assert journal_module._json(model) == model.model_dump_json()


async def test_one_write_can_carry_an_order_and_a_fill(journal: Journal) -> None:
    order, fill = make_order("o1", account="sub"), make_fill("t1", order_id="o1", account="sub")
    await journal.write("fill", ts="1", order=order, fill=fill)
    await journal.write("note", ts="2", account="", data={"x": 1})
    c = await journal.load()
    assert c.orders == [order] and c.fills == [fill]
    events = await journal.events()
    assert [(e["kind"], e["account"], e["order_id"]) for e in events] == [("fill", "sub", "o1"), ("note", None, None)]


async def test_the_wal_shrinks_back_after_a_burst(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal_module, "WAL_KEEP_BYTES", 64 * 1024)
    monkeypatch.setattr(journal_module, "CHECKPOINT_BYTES", 1)
    monkeypatch.setattr(journal_module, "QUIET_SECONDS", 3600)
    journal = await Journal.open(path)
    try:
        wal = path.parent / (path.name + "-wal")
        await asyncio.gather(*(journal.write("burst", ts=str(i), order=make_order(f"o{i}")) for i in range(400)))
        assert wal.stat().st_size > 256 * 1024
        monkeypatch.setattr(journal_module, "QUIET_SECONDS", 0)
        await journal.write("wake", ts="x")  # due and now quiet: the checkpoint follows this commit
        await _until(journal, lambda: journal.checkpoints == 1)
        await journal.write("after", ts="y")  # the WAL restarts from its beginning, cut back
        assert wal.stat().st_size <= 64 * 1024
        assert (await journal.load()).event_count == 402
    finally:
        await journal.close()


async def _until(journal: Journal, predicate: Callable[[], bool]) -> None:
    """Let the writer work until ``predicate`` holds. Each turn is a round trip to the database
    thread (queued behind whatever the writer sent it): an awaited event, not a wall-clock wait,
    and one that lets that thread have the GIL."""
    for _ in range(50):
        if predicate():
            return
        await journal._db._execute(int)
    raise AssertionError(f"the journal's writer never got there (unchecked {journal._unchecked}, checkpoints {journal.checkpoints})")


async def test_checkpoint_runs_when_the_desk_goes_quiet(
    journal: Journal, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's own checkpoint (inside the commit that crosses its threshold, so every order
    waiting on that commit waits for it) is only a far backstop; the writer copies the WAL back
    itself once enough is written and no write comes for a while."""
    async with journal._db.execute("PRAGMA wal_autocheckpoint") as cur:
        assert (await cur.fetchone())[0] == journal_module._AUTOCHECKPOINT_PAGES > 1000
    monkeypatch.setattr(journal_module, "CHECKPOINT_BYTES", 4096)
    monkeypatch.setattr(journal_module, "QUIET_SECONDS", 0)
    await journal.write("small", ts="1", data={"x": 1})
    await journal.flush()
    assert journal.checkpoints == 0  # well under the threshold: none due
    await asyncio.gather(*(journal.write("big", ts="2", order=make_order(f"o{i}")) for i in range(20)))
    await _until(journal, lambda: journal.checkpoints == 1)
    assert journal._unchecked == 0
    # what was checkpointed is in the database file itself: a copy without the WAL has it
    copy = path.parent / "copy.sqlite"
    shutil.copyfile(path, copy)
    with sqlite3.connect(copy) as con:
        assert con.execute("SELECT count(*) FROM events WHERE kind='big'").fetchone()[0] == 20


async def test_a_burst_is_checkpointed_only_once_its_wal_is_too_large(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal_module, "CHECKPOINT_BYTES", 1)
    monkeypatch.setattr(journal_module, "QUIET_SECONDS", 3600)  # the desk is never quiet here
    for i in range(10):  # one write after another, each commit due a checkpoint
        await journal.write("busy", ts=str(i), order=make_order(f"o{i}"))
    assert journal.checkpoints == 0
    await _until(journal, lambda: journal.idle)  # the writer looks at the limit after it settles a commit
    monkeypatch.setattr(journal_module, "CHECKPOINT_MAX_BYTES", 1)
    await journal.write("one more", ts="x", order=make_order("o1"))
    await journal.flush()  # queued behind the checkpoint that followed that commit
    assert journal.checkpoints == 1
    assert [e["kind"] for e in await journal.events(limit=20)][-1] == "one more"


async def test_a_write_interrupts_a_quiet_checkpoint(
    journal: Journal, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A checkpoint after a long burst can take ~100 ms: the order (or the halt) that comes
    meanwhile must not wait for it. Its write interrupts it; it runs again when quiet."""
    monkeypatch.setattr(journal_module, "CHECKPOINT_BYTES", 1)
    monkeypatch.setattr(journal_module, "QUIET_SECONDS", 0)
    started, proceed = threading.Event(), threading.Event()

    def hold(statement: str) -> None:  # in the database thread, as a statement starts to run
        if "wal_checkpoint" in statement and not proceed.is_set():
            started.set()
            proceed.wait(10)

    await journal._db._execute(journal._db._conn.set_trace_callback, hold)
    with caplog.at_level("WARNING", logger="core.journal"):
        await journal.write("first", ts="1", order=make_order("o1"))
        assert await asyncio.to_thread(started.wait, 10)  # quiet: the checkpoint is running
        second = journal.write("second", ts="2", order=make_order("o2"))
        proceed.set()
        await second
        assert journal.checkpoints_interrupted == 1 and journal.checkpoints == 0
        assert journal._unchecked > 0 or journal._checkpointing  # still due (with no quiet to wait for: queued again)
        await _until(journal, lambda: journal.checkpoints == 1)  # the next quiet spell
    await journal._db._execute(journal._db._conn.set_trace_callback, None)
    assert "checkpoint failed" not in caplog.text
    assert [e["kind"] for e in await journal.events()] == ["first", "second"]


async def test_a_write_stops_a_quiet_checkpoint_that_has_not_started(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint queued behind other work in the database thread, when a write comes, must
    not start at all: there is no statement yet for an interrupt to stop."""
    monkeypatch.setattr(journal_module, "CHECKPOINT_BYTES", 1)
    monkeypatch.setattr(journal_module, "QUIET_SECONDS", 3600)
    statements: list[str] = []
    await journal._db._execute(journal._db._conn.set_trace_callback, statements.append)
    await journal.write("first", ts="1", order=make_order("o1"))
    await _until(journal, lambda: journal.idle)
    assert journal._quiet is not None  # due once the desk is quiet
    proceed = threading.Event()
    busy = asyncio.ensure_future(journal._db._execute(proceed.wait, 10))
    await asyncio.sleep(0)  # its job is queued: the database thread is held
    journal._quiet.cancel()
    journal._quiet_checkpoint()  # the quiet spell is over: queued behind the held thread
    assert journal._checkpointing
    second = journal.write("second", ts="2", order=make_order("o2"))
    proceed.set()
    assert await busy
    await second
    assert journal.checkpoints_interrupted == 1 and journal.checkpoints == 0
    assert not any("wal_checkpoint" in s for s in statements)
    await journal._db._execute(journal._db._conn.set_trace_callback, None)


async def test_reads_and_writes_go_on_through_quiet_checkpoints(
    journal: Journal, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A checkpoint due after every commit, reads running alongside: each read is one hop to the
    database thread, so no checkpoint finds a read's statement open (it failed with "table is
    locked") and no interrupt meant for a checkpoint ends a read."""
    monkeypatch.setattr(journal_module, "CHECKPOINT_BYTES", 1)
    monkeypatch.setattr(journal_module, "QUIET_SECONDS", 0)
    writing = True
    reads = 0

    async def read() -> None:
        nonlocal reads
        while writing:
            await journal.events(limit=3)
            reads += 1

    async def write() -> None:
        nonlocal writing
        for i in range(150):
            await journal.write("w", ts=str(i), order=make_order(f"o{i % 7}", revision=i))
            if i % 3 == 0:
                await journal._db._execute(int)  # a quiet moment: the checkpoint starts
        writing = False

    with caplog.at_level("WARNING", logger="core.journal"):
        await asyncio.gather(write(), read(), read())
    assert reads > 50
    assert journal.checkpoints > 10, (journal.checkpoints_interrupted, journal.commits)
    assert "checkpoint failed" not in caplog.text
    assert [e["ts"] for e in await journal.events(limit=500)] == [str(i) for i in range(150)]


async def test_a_failed_checkpoint_is_logged_and_loses_nothing(
    journal: Journal, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    attempts = []

    def refuse(self: Journal, interruptible: bool) -> bool:
        attempts.append(1)
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(journal_module, "CHECKPOINT_BYTES", 900)  # one order write is ~1,000 bytes
    monkeypatch.setattr(journal_module, "QUIET_SECONDS", 0)
    monkeypatch.setattr(Journal, "_checkpoint_in_thread", refuse)
    with caplog.at_level("WARNING", logger="core.journal"):
        await journal.write("first", ts="1", order=make_order("o1"))
        await _until(journal, lambda: len(attempts) == 1)
        for _ in range(20):  # not retried in a loop: only after as much again is written
            await journal._db._execute(int)
        assert len(attempts) == 1
        await journal.write("second", ts="2", order=make_order("o2"))
        await _until(journal, lambda: len(attempts) == 2)
    assert journal.checkpoints == 0
    assert "checkpoint failed (disk I/O error)" in caplog.text
    assert [e["kind"] for e in await journal.events()] == ["first", "second"]


@pytest.mark.parametrize(
    "bad_state",
    [
        pytest.param({"trading_state_reason": None}, id="not-null-violation"),
        pytest.param({"trading_state_reason": {"nested": 1}}, id="unbindable-value"),
    ],
)
async def test_one_bad_write_does_not_sink_its_batch(journal: Journal, bad_state: dict[str, Any]) -> None:
    o1, o2 = make_order("o1"), make_order("o2")
    base_commits = journal.commits
    futures = [
        journal.write("order_created", ts="1", order=o1),
        journal.write("note", ts="2", data={"n": 1}),
        journal.write("bad_halt", ts="3", order=make_order("o9"), state=bad_state),  # fails in the DB
        journal.write("order_created", ts="4", order=o2),
        journal.write("halt", ts="5", state={"trading_state": "HALTED"}),
    ]
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert [r is None for r in results] == [True, True, False, True, True]
    err = results[2]
    assert isinstance(err, JournalError)
    assert "bad_halt" in str(err)
    assert journal.commits > base_commits
    c = await journal.load()
    assert c.orders == [o1, o2]  # the failed write left nothing behind: not its order ...
    assert c.state == {"trading_state": "HALTED"}
    events = await journal.events()
    assert [e["kind"] for e in events] == ["order_created", "note", "order_created", "halt"]  # ... nor its event
    # the journal keeps working afterwards
    await journal.write("after", ts="6")
    assert (await journal.load()).event_count == 5


async def test_reused_client_order_id_is_journaled_not_refused(journal: Journal) -> None:
    """The schema documents (account, client_order_id) as deliberately not unique: the engine
    refuses duplicates, and the refused order is journaled too."""
    first = make_order("o1", client_order_id="dup")
    refused = make_order("o2", client_order_id="dup", status=OrderStatus.REJECTED, error="duplicate client order id")
    assert await asyncio.gather(
        journal.write("order_created", ts="1", order=first),
        journal.write("order_rejected", ts="2", order=refused),
    ) == [None, None]
    assert (await journal.load()).orders == [first, refused]


async def test_non_sqlite_error_in_a_write_does_not_stop_the_writer(journal: Journal) -> None:
    bad = journal.write("bad\udc80kind", ts="1")  # cannot be encoded: fails in sqlite3, not in SQLite
    good = journal.write("good", ts="2")
    r_bad, r_good = await asyncio.gather(bad, good, return_exceptions=True)
    assert isinstance(r_bad, JournalError)
    assert r_good is None
    await journal.write("after", ts="3")
    assert [e["kind"] for e in await journal.events()] == ["good", "after"]
    assert journal.idle


# -- audit trail -----------------------------------------------------------------------------------


async def test_events_table_is_append_only(journal: Journal) -> None:
    await journal.write("order_created", ts="1", order=make_order("o1"))
    await journal.write("note", ts="2", data={"x": 1})
    before = await journal.events()
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        await journal._db.execute("UPDATE events SET kind='forged' WHERE seq=1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        await journal._db.execute("DELETE FROM events")
    assert not journal._db.in_transaction
    assert await journal.events() == before
    await journal.write("after", ts="3")  # writing still works
    assert [e["kind"] for e in await journal.events()] == ["order_created", "note", "after"]


async def test_flush_writes_no_event(journal: Journal) -> None:
    await journal.flush()
    assert (await journal.load()).event_count == 0
    pending = journal.write("note", ts="1")
    await journal.flush()
    assert pending.done() and pending.exception() is None  # flush waits for everything queued before it
    await journal.flush()
    assert (await journal.load()).event_count == 1
    assert [e["kind"] for e in await journal.events()] == ["note"]


# -- refusals at open ------------------------------------------------------------------------------


async def test_locked_journal_is_refused_and_untouched(path: Path, journal: Journal) -> None:
    await journal.write("order_created", ts="1", order=make_order("o1"))
    before = snapshot(path)
    with pytest.raises(JournalError, match="in use") as info:
        await Journal.open(path)
    assert "locked" in str(info.value)
    assert snapshot(path) == before
    # the first owner is unaffected
    await journal.write("note", ts="2")
    assert (await journal.load()).event_count == 2


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"this is not a database, just some notes\n" * 40, id="text"),
        pytest.param(bytes(range(256)) * 32, id="binary"),
        pytest.param(b"SQLite format 3\x00" + b"\xff" * 4080, id="bad-header"),
    ],
)
async def test_corrupt_file_is_refused_and_untouched(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    before = snapshot(path)
    with pytest.raises(JournalError, match=r"corrupt|not a database"):
        await Journal.open(path)
    assert snapshot(path) == before
    assert sidecars(path) == []


async def test_damaged_journal_pages_are_refused_and_untouched(path: Path) -> None:
    j = await Journal.open(path)
    await asyncio.gather(*(j.write("note", ts=str(i), data={"pad": "x" * 300, "i": i}) for i in range(300)))
    await j.close()
    raw = bytearray(path.read_bytes())
    assert len(raw) > 4096 * 8
    for i in range(4096 * 3, 4096 * 3 + 256):  # scribble over a b-tree page
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    before = snapshot(path)
    with pytest.raises(JournalError, match="corrupt"):
        await Journal.open(path)
    assert snapshot(path) == before


async def test_foreign_sqlite_file_is_refused(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    con.execute("INSERT INTO notes(body) VALUES ('keep me')")
    con.commit()
    con.close()
    with pytest.raises(JournalError, match="not a tradedesk journal"):
        await Journal.open(path)
    con = sqlite3.connect(path)
    try:
        assert con.execute("SELECT body FROM notes").fetchall() == [("keep me",)]
        assert {r[0] for r in con.execute("SELECT name FROM sqlite_master")} == {"notes"}
    finally:
        con.close()


async def test_foreign_sqlite_file_is_left_byte_for_byte_untouched(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    con.commit()
    con.close()
    before = snapshot(path)
    with pytest.raises(JournalError, match="not a tradedesk journal"):
        await Journal.open(path)
    after = snapshot(path)
    con = sqlite3.connect(path)
    try:
        mode = con.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        con.close()
    assert (after, mode) == (before, "delete")


async def test_foreign_sqlite_file_with_user_version_is_reported_as_foreign(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    con.commit()
    con.close()
    with pytest.raises(JournalError, match="not a tradedesk journal"):
        await Journal.open(path)


async def test_newer_schema_is_refused_and_untouched(path: Path) -> None:
    j = await Journal.open(path)
    await j.write("order_created", ts="1", order=make_order("o1"))
    await j.close()
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    con.close()
    before = snapshot(path)
    with pytest.raises(JournalError, match="newer") as info:
        await Journal.open(path)
    assert f"v{SCHEMA_VERSION + 1}" in str(info.value)
    assert snapshot(path) == before
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert con.execute("SELECT count(*) FROM events").fetchone()[0] == 1
    finally:
        con.close()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root bypasses file permissions")
async def test_read_only_file_is_refused_and_untouched(path: Path) -> None:
    j = await Journal.open(path)
    await j.write("note", ts="1")
    await j.close()
    path.chmod(0o444)
    try:
        before = snapshot(path)
        with pytest.raises(JournalError, match="read-only"):
            await Journal.open(path)
        assert snapshot(path) == before
    finally:
        path.chmod(0o644)


async def test_read_only_file_message_when_access_is_denied(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs even as root: the permission answer is simulated, the refusal and the untouched file are real."""
    j = await Journal.open(path)
    await j.write("note", ts="1")
    await j.close()
    before = snapshot(path)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if mode & os.W_OK else real_access(p, mode, *a, **k))
    with pytest.raises(JournalError, match="read-only"):
        await Journal.open(path)
    assert snapshot(path) == before


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root bypasses folder permissions")
async def test_read_only_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(JournalError, match="read-only"):
            await Journal.open(folder / "journal.sqlite")
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


async def test_missing_folder_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "folder" / "journal.sqlite"
    with pytest.raises(JournalError, match="does not exist"):
        await Journal.open(target)
    assert not (tmp_path / "no").exists()


async def test_write_order_is_write_with_an_order(path: Path, opener: Callable[..., Any]) -> None:
    """The order path's two writes go through ``write_order``: the same event and row as ``write``."""
    order = make_order("o1", status=OrderStatus.OPEN, revision=3)
    a = await opener(path)
    await a.write_order("order_acked", "1", order)
    await a.write("order_acked", ts="1", order=order)  # takes the same way: another event, the same row
    other = path.parent / "other.sqlite"
    b = await opener(other)
    await b.write("order_acked", ts="1", order=order, account=order.account, data=None)
    await b.write("order_acked", ts="1", order=order, data={"why": "x"})  # the general way: payload differs
    ca, cb = await a.load(), await b.load()
    assert ca.orders == cb.orders == [order]
    ea, eb = await a.events(), await b.events()
    assert [(e["kind"], e["account"], e["order_id"], e["data"]) for e in ea] == [
        ("order_acked", "paper", "o1", json.loads(order.model_dump_json()))] * 2
    assert [(e["kind"], e["account"], e["order_id"]) for e in eb] == [("order_acked", "paper", "o1")] * 2
    assert eb[0]["data"] == ea[0]["data"] and eb[1]["data"] == {"order": ea[0]["data"], "why": "x"}


def test_a_burst_lowers_the_switch_interval_and_a_lull_sets_it_back(monkeypatch: pytest.MonkeyPatch) -> None:
    journal_module._pace_switching(0)  # whatever ran before
    monkeypatch.setattr(journal_module, "_normal_switch", [])
    before = sys.getswitchinterval()
    try:
        journal_module._pace_switching(1)
        assert sys.getswitchinterval() == before
        journal_module._pace_switching(journal_module.BURST_WRITES)
        lowered = sys.getswitchinterval()  # kept in microseconds: 20e-6 reads back as 1.99..e-05
        assert lowered == pytest.approx(journal_module.SWITCH_INTERVAL) and lowered < before
        journal_module._pace_switching(journal_module.LULL_WRITES + 1)  # between the two: kept
        assert sys.getswitchinterval() == lowered
        journal_module._pace_switching(journal_module.LULL_WRITES)
        assert sys.getswitchinterval() == before
    finally:
        sys.setswitchinterval(before)


async def test_one_chain_of_polls_however_many_batches(journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the database thread drains batch after batch, the loop looks for committed ones
    once per turn: one chain of polls, not one more per batch; none at all once idle."""
    await journal.flush()
    polled = _counting(monkeypatch, journal, "_poll")
    entered = [threading.Event() for _ in range(3)]
    release = [threading.Event() for _ in range(3)]

    def hold(statement: str) -> None:  # in the database thread: holds each of the three commits once
        for n in range(3):  # (the trigger's steps trace the same expanded text again)
            if f"'t{n}'" in statement and not entered[n].is_set():
                entered[n].set()
                release[n].wait(10)

    await journal._db._execute(journal._db._conn.set_trace_callback, hold)
    writes = [journal.write("a", ts="t0", order=make_order("o0"))]
    for n in range(2):  # each commit held while the next write comes: three batches in one drain
        assert await asyncio.to_thread(entered[n].wait, 10)
        writes.append(journal.write("w", ts=f"t{n + 1}", order=make_order(f"o{n + 1}")))
        release[n].set()
    assert await asyncio.to_thread(entered[2].wait, 10)
    turns, before = 20, polled[0]
    for _ in range(turns):
        await asyncio.sleep(0)
    assert turns - 2 <= polled[0] - before <= turns + 2  # one poll per turn
    release[2].set()
    await asyncio.gather(*writes)
    await _until(journal, lambda: journal.idle and not journal._polling)
    idle = polled[0]
    for _ in range(5):
        await asyncio.sleep(0)
    assert polled[0] == idle  # none left running once idle
    await journal._db._execute(journal._db._conn.set_trace_callback, None)
    assert [e["ts"] for e in await journal.events()] == ["t0", "t1", "t2"]


async def test_a_desk_pace_write_polls_not_at_all(journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    """One batch per drain (a desk's pace) is settled with the job's end: the loop never polls."""
    polled = _counting(monkeypatch, journal, "_poll")
    for i in range(5):
        await journal.write("w", ts=str(i), order=make_order("o1"))
    assert polled == [0]


async def test_a_writer_failure_with_a_batch_in_hand_fails_it_rather_than_hang(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(writes: int) -> None:
        raise RuntimeError("writer bug")

    monkeypatch.setattr(journal_module, "_pace_switching", broken)  # after the batch is taken
    results = await asyncio.gather(journal.write("a", ts="1"), journal.write("b", ts="2"), return_exceptions=True)
    assert [type(r) for r in results] == [JournalError, JournalError]
    monkeypatch.undo()
    await journal.write("c", ts="3")
    assert [e["kind"] for e in await journal.events()] == ["c"] and journal.idle


async def test_the_switch_interval_comes_back_once_a_burst_ends(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst whose last commits are not small (a cancel-all) must not leave the process on the
    burst's interval: it is set back once the desk is quiet, and when the journal closes."""
    journal_module._pace_switching(0)
    normal = sys.getswitchinterval()
    monkeypatch.setattr(journal_module, "QUIET_SECONDS", 0)
    entered, release = threading.Event(), threading.Event()

    during: list[float] = []

    def hold(statement: str) -> None:  # the first commit held while a burst piles up behind it
        if "'b0'" in statement and not entered.is_set():
            entered.set()
            release.wait(10)
        if "'b40'" in statement and not during:
            during.append(sys.getswitchinterval())

    await journal._db._execute(journal._db._conn.set_trace_callback, hold)
    first = journal.write("w", ts="b0", order=make_order("o0"))
    assert await asyncio.to_thread(entered.wait, 10)
    burst = [journal.write("w", ts=f"b{i}", order=make_order(f"o{i}")) for i in range(1, 41)]
    release.set()
    await asyncio.gather(first, *burst)
    assert during[0] < normal  # lowered for the burst's commit of 40, the last
    await _until(journal, lambda: journal.idle and not journal_module._normal_switch)
    assert sys.getswitchinterval() == normal
    await journal._db._execute(journal._db._conn.set_trace_callback, None)


async def test_a_quiet_checkpoint_under_way_is_not_idle_and_close_waits_for_it(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal_module, "CHECKPOINT_BYTES", 1)
    monkeypatch.setattr(journal_module, "QUIET_SECONDS", 0)
    journal = await Journal.open(path)
    await journal.write("w", ts="1", order=make_order("o1"))
    assert journal._checkpointing  # queued at once: no quiet to wait for
    assert not journal.idle and not journal._settled.is_set()
    await journal.close()  # waits for it (interrupted, or done)
    assert not journal._checkpointing
