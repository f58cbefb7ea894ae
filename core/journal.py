"""The write-ahead journal: one SQLite file (WAL) holding an append-only ``events`` table and the
projections rebuilt from it (orders, fills, positions, accounts, trading state), written in the
same transaction.

Writes are group-committed: every ``write`` joins a queue, and the database thread commits
what is queued in one transaction, then what came meanwhile, and only then resolves their
futures. A caller that awaited ``write`` therefore holds a durable record
(``synchronous=FULL``), while the commit rate no longer caps the order rate.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import sys
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite

from core.models import Fill, Order

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
APP_ID = "tradedesk"

_MIGRATIONS: dict[int, list[str]] = {
    1: [
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE events (
               seq INTEGER PRIMARY KEY AUTOINCREMENT,
               ts TEXT NOT NULL, kind TEXT NOT NULL, account TEXT, order_id TEXT, data TEXT NOT NULL)""",
        "CREATE INDEX events_order ON events(order_id)",
        "CREATE TRIGGER events_no_update BEFORE UPDATE ON events BEGIN SELECT RAISE(ABORT, 'events are append-only'); END",
        "CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN SELECT RAISE(ABORT, 'events are append-only'); END",
        """CREATE TABLE orders (
               id TEXT PRIMARY KEY, account TEXT NOT NULL, client_order_id TEXT NOT NULL,
               symbol TEXT NOT NULL, status TEXT NOT NULL, data TEXT NOT NULL)""",
        """CREATE TABLE fills (
               account TEXT NOT NULL, id TEXT NOT NULL, order_id TEXT NOT NULL, data TEXT NOT NULL,
               PRIMARY KEY (account, id))""",
        "CREATE TABLE positions (account TEXT NOT NULL, symbol TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (account, symbol))",
        "CREATE TABLE accounts (account TEXT PRIMARY KEY, data TEXT NOT NULL)",
        "CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ],
    # One statement commits a whole batch: rows tagged by what they hold go into a view whose
    # trigger writes each to its tables, in write order (a later row for the same key wins). A
    # lone statement is its own transaction, so a commit is one step in SQLite, and the database
    # thread takes the GIL back once for it instead of once per statement (BEGIN, one insert per
    # table, COMMIT), each a wait while the loop holds it. Columns by tag:
    #   e   an event          a=ts b=kind c=account d=order id e=payload
    #   eo  an event whose payload is its order: the event, and the order's row
    #                         a=ts b=kind c=account d=order id e=order JSON f=client order id g=symbol h=status
    #   o   an order's row    c=account d=id e=JSON f=client order id g=symbol h=status
    #   f   a fill            c=account d=order id e=JSON f=id
    #   p   a position        c=account e=JSON f=symbol
    #   a   an account        c=account e=JSON
    #   s   a state value     e=value f=key
    2: [
        "CREATE VIEW journal_rows(t, a, b, c, d, e, f, g, h) AS SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL WHERE 0",
        """CREATE TRIGGER journal_rows_in INSTEAD OF INSERT ON journal_rows BEGIN
  INSERT INTO events(ts, kind, account, order_id, data) SELECT NEW.a, NEW.b, NEW.c, NEW.d, NEW.e WHERE NEW.t IN ('e', 'eo');
  INSERT INTO orders(id, account, client_order_id, symbol, status, data) SELECT NEW.d, NEW.c, NEW.f, NEW.g, NEW.h, NEW.e
    WHERE NEW.t IN ('eo', 'o') ON CONFLICT(id) DO UPDATE SET status=excluded.status, data=excluded.data;
  INSERT OR IGNORE INTO fills(account, id, order_id, data) SELECT NEW.c, NEW.f, NEW.d, NEW.e WHERE NEW.t = 'f';
  INSERT OR REPLACE INTO positions(account, symbol, data) SELECT NEW.c, NEW.f, NEW.e WHERE NEW.t = 'p';
  INSERT OR REPLACE INTO accounts(account, data) SELECT NEW.c, NEW.e WHERE NEW.t = 'a';
  INSERT OR REPLACE INTO state(key, value) SELECT NEW.f, NEW.e WHERE NEW.t = 's';
END""",
    ],
}


_WIDTH = 9  # columns of journal_rows
_ROWS = 128  # rows per statement; a batch with more is one explicit transaction
_BATCH = 256  # writes per commit at most
_INSERT = ("",) + tuple(
    "INSERT INTO journal_rows VALUES " + ", ".join(["(" + ", ".join("?" * _WIDTH) + ")"] * n) for n in range(1, _ROWS + 1)
)  # fixed texts: sqlite3's statement cache keeps them

# How long a thread waiting for the GIL waits before it asks the holder to let go (Python's
# default: 5 ms). The database thread needs the GIL back after every commit, while the loop is
# busy with the next orders: at 5 ms it waited longer than the commit took, and in a burst
# commits could not overlap the loop's work. Lowered for the process while commits carry
# BURST_WRITES writes or more (writes piled up during the one before), and set back once they
# carry LULL_WRITES or fewer: at a desk's pace the default keeps the screen's loop from being
# interrupted (the console's key-press latency rose by a quarter with it lowered all the time).
SWITCH_INTERVAL = 20e-6
BURST_WRITES = 8
LULL_WRITES = 2
_normal_switch: list[float] = []  # the process's interval while it is lowered (one item)
_switch_lock = threading.Lock()  # the database threads of two journals, and the loop's restore

# Checkpoints: SQLite copies the WAL back into the database file (with its own fsyncs) inside
# whichever commit crosses wal_autocheckpoint pages, and every order waiting on that commit waits
# for it too: about 2.5 ms per MB, the whole of the order path's p99 in a burst. So the writer
# runs them itself, between commits, when the desk goes quiet (as SQLite's WAL notes suggest):
# one is due after CHECKPOINT_BYTES and runs once no write has come for QUIET_SECONDS, and the
# next write interrupts it (an order, or a halt, never waits behind one; it runs again at the
# next quiet spell). Only a WAL past CHECKPOINT_MAX_BYTES is checkpointed in the middle of a
# burst, uninterrupted (~25-90 ms for 16 MB). SQLite's own stays as a backstop. Quiet is short:
# a desk amending 1,000 orders a second commits every ~50 ms with gaps of 10-40 ms, a checkpoint
# of 1 MB takes ~10-15 ms, and at 50 ms of quiet none ever ran there, so the WAL grew to the
# uninterrupted one (30-100 ms, in front of whatever order came next).
CHECKPOINT_BYTES = 1 << 20
QUIET_SECONDS = 0.01
CHECKPOINT_MAX_BYTES = 16 << 20
WAL_KEEP_BYTES = 8 << 20  # the WAL file is cut back to this when it restarts after a checkpoint
_AUTOCHECKPOINT_PAGES = 4 * CHECKPOINT_MAX_BYTES // 4096  # the WAL holds ~2x the bytes written


def _pace_switching(writes: int) -> None:
    """Before a commit of ``writes`` (0: the desk went quiet): see SWITCH_INTERVAL."""
    with _switch_lock:
        if writes >= BURST_WRITES and not _normal_switch:
            _normal_switch.append(sys.getswitchinterval())
            sys.setswitchinterval(min(SWITCH_INTERVAL, _normal_switch[0]))
        elif writes <= LULL_WRITES and _normal_switch:
            sys.setswitchinterval(_normal_switch.pop())


class JournalError(Exception):
    """The journal cannot be used; the message says why and what to do. The file is untouched."""


@dataclass(slots=True)
class _Write:
    kind: str
    rows: list[Any]  # its rows for ``journal_rows``, flat: _WIDTH values each
    size: int  # bytes of JSON it adds to the WAL, roughly
    future: asyncio.Future[None]


_Settled = tuple[list[_Write], "dict[int, BaseException] | None"]  # a committed batch, the writes that failed


@dataclass(slots=True)
class JournalContents:
    meta: dict[str, str]
    orders: list[Order]
    fills: list[Fill]
    positions: dict[str, list[dict[str, Any]]]  # account -> ledger book snapshots
    accounts: dict[str, dict[str, Any]]
    state: dict[str, str]
    event_count: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _json(model: Order | Fill) -> str:
    """``model.model_dump_json()``, the same text, without the wrapper that forwards its fifteen
    default keyword arguments to the model's serializer: that wrapper was a sixth of the cost
    of an order's JSON, and every order is serialised twice (tests/test_journal.py compares)."""
    return model.__pydantic_serializer__.to_json(model).decode()


class Journal:
    def __init__(self, path: Path, db: aiosqlite.Connection, meta: dict[str, str]) -> None:
        self.path = path
        self._db = db
        self.meta = meta
        self._loop = asyncio.get_running_loop()
        self._pending: deque[_Write] = deque()  # appended on the loop, taken in the database thread
        self._draining = False  # a drain job is queued or running in the database thread
        self._committed_batches: deque[_Settled] = deque()  # appended in the database thread
        self._polling = False  # ``_poll`` is scheduled
        self._drain_running = False  # set by the database thread while it runs a drain
        self._taken: list[_Write] | None = None  # the batch the running drain holds
        self._quiet: asyncio.TimerHandle | None = None  # a quiet checkpoint waits for its moment
        self._settled = asyncio.Event()  # nothing pending, committing or checkpointing
        self._settled.set()
        self._closed = False
        self.recent_kinds: deque[str] = deque(maxlen=256)  # last committed event kinds (diagnostics)
        self.commits = 0
        self.writes = 0
        self._quiet_checkpoints = 0  # counted on the loop
        self._burst_checkpoints = 0  # counted in the database thread
        self.checkpoints_interrupted = 0
        self._checkpointing = False  # a quiet checkpoint is queued or running (loop side)
        self._checkpoint_lock = threading.Lock()
        self._checkpoint_running = False  # its statement is running (database thread side)
        self._checkpoint_cancelled = False  # a write came: it must not start, or must stop
        # Bytes committed (written by the database thread only) and that count at the last
        # checkpoint: what lies between is roughly what the WAL holds.
        self._committed = 0
        self._checked_at = 0

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    async def open(cls, path: str | os.PathLike[str], *, token: str | None = None) -> Journal:
        """Open or create the journal at ``path``. Raises ``JournalError`` with a clear reason
        for a locked, corrupt, foreign, newer or read-only file, and never overwrites it."""
        p = Path(path).expanduser()
        existed = p.exists() and p.stat().st_size > 0
        if existed and not os.access(p, os.W_OK):
            raise JournalError(f"journal {p} is read-only: tradedesk needs to write to it (check its permissions)")
        if not existed and not p.parent.exists():
            raise JournalError(f"cannot create journal {p}: folder {p.parent} does not exist")
        if not existed and not os.access(p.parent, os.W_OK):
            raise JournalError(f"cannot create journal {p}: folder {p.parent} is read-only")
        try:
            # cached_statements: the batch inserts are up to 128 distinct texts (the default is 128)
            db = await aiosqlite.connect(p, timeout=0.2, isolation_level=None, cached_statements=256)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open journal {p}: {exc}") from None
        try:
            meta = await cls._prepare(db, p, existed, token)
        except BaseException:
            await db.close()
            raise
        return cls(p, db, meta)

    @classmethod
    async def _prepare(cls, db: aiosqlite.Connection, p: Path, existed: bool, token: str | None) -> dict[str, str]:
        # One hop to the database thread for the whole check and migration: at start-up the
        # screen is being built at the same time, and every hop waits for the GIL.
        return await db._execute(cls._prepare_in_thread, db._conn, p, existed, token)

    @staticmethod
    def _prepare_in_thread(db: sqlite3.Connection, p: Path, existed: bool, token: str | None) -> dict[str, str]:
        try:
            if existed:
                # Everything that could refuse the file is read before anything is written to it.
                row = db.execute("PRAGMA quick_check").fetchone()
                if not row or row[0] != "ok":
                    raise JournalError(f"journal {p} is corrupt ({row[0] if row else 'no answer'}); it was left untouched")
                version = db.execute("PRAGMA user_version").fetchone()[0]
                tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                if tables and "meta" not in tables:
                    raise JournalError(f"{p} is an SQLite file but not a tradedesk journal; it was left untouched")
                if "meta" in tables:
                    app = db.execute("SELECT value FROM meta WHERE key='app'").fetchone()
                    if not app or app[0] != APP_ID:
                        raise JournalError(f"{p} is not a tradedesk journal; it was left untouched")
                if version > SCHEMA_VERSION:
                    raise JournalError(
                        f"journal {p} has schema v{version}, newer than this tradedesk understands (v{SCHEMA_VERSION}): "
                        "upgrade tradedesk; the journal was left untouched"
                    )
            # One process per journal: EXCLUSIVE holds the lock from the first write to close.
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise JournalError(f"journal {p}: could not switch to WAL mode (got {mode})")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(f"PRAGMA wal_autocheckpoint={_AUTOCHECKPOINT_PAGES}")
            db.execute(f"PRAGMA journal_size_limit={WAL_KEEP_BYTES}")  # a burst's WAL shrinks back after it
            db.execute("BEGIN IMMEDIATE")  # takes the lock now, so a second console fails here
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if version == 0 and tables:
                db.execute("ROLLBACK")
                raise JournalError(f"{p} is an SQLite file but not a tradedesk journal; it was left untouched")
            if version > SCHEMA_VERSION:
                db.execute("ROLLBACK")
                raise JournalError(
                    f"journal {p} has schema v{version}, newer than this tradedesk understands (v{SCHEMA_VERSION}): "
                    "upgrade tradedesk; the journal was left untouched"
                )
            for v in range(version + 1, SCHEMA_VERSION + 1):
                for stmt in _MIGRATIONS[v]:
                    db.execute(stmt)
            if version == 0:
                import secrets

                db.executemany(
                    "INSERT INTO meta(key, value) VALUES (?, ?)",
                    [("app", APP_ID), ("token", token or secrets.token_hex(3))],
                )
            if version != SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute("COMMIT")
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("app") != APP_ID:
                raise JournalError(f"{p} is not a tradedesk journal; it was left untouched")
            return meta
        except sqlite3.OperationalError as exc:
            msg = str(exc)
            if "locked" in msg or "busy" in msg:
                raise JournalError(f"journal {p} is in use by another tradedesk process (database is locked)") from None
            if "readonly" in msg or "read-only" in msg:
                raise JournalError(f"journal {p} is read-only: tradedesk needs to write to it") from None
            raise JournalError(f"cannot open journal {p}: {msg}") from None
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"journal {p} is corrupt or not a database ({exc}); it was left untouched") from None

    # -- writing ---------------------------------------------------------------------------

    def write(
        self,
        kind: str,
        *,
        ts: str,
        account: str | None = None,
        order: Order | None = None,
        orders: Iterable[Order] = (),
        fill: Fill | None = None,
        data: dict[str, Any] | None = None,
        positions: Iterable[dict[str, Any]] = (),
        ledger: dict[str, Any] | None = None,
        state: dict[str, str] | None = None,
    ) -> asyncio.Future[None]:
        """Queue one event and its projection updates. Await the returned future: when it
        resolves, the event is committed to disk."""
        if (order is not None and kind and data is None and fill is None and not orders and not positions
                and ledger is None and state is None and (account is None or account == order.account)):
            return self.write_order(kind, ts, order)
        if self._closed:
            raise JournalError(f"journal {self.path} is closed")
        # Each row is serialised once, and an order's JSON is both its event's payload and its
        # projection row, bound once (an "eo" row).
        order_id: str | None = None
        order_json = fill_json = None
        if fill is not None:
            fill_json = _json(fill)
            order_id = fill.order_id
        if order is not None:
            order_json = payload = _json(order)
            if data is not None:
                payload = json.dumps({"order": json.loads(order_json), **data})
            order_id = order.id
        elif fill_json is not None:
            payload = fill_json
        else:
            payload = json.dumps(data or {}, default=str)
        account = account or (order.account if order is not None else fill.account if fill is not None else None)
        rows: list[Any] = []
        size = 0
        if kind:
            size += len(payload)
            rows += ("e", ts, kind, account, order_id, payload, None, None, None)
        if order is not None:
            rows += ("o", None, None, order.account, order.id, order_json, order.client_order_id, order.symbol, order.status)
            size += len(order_json)  # type: ignore[arg-type]
        for o in orders:
            oj = _json(o)
            rows += ("o", None, None, o.account, o.id, oj, o.client_order_id, o.symbol, o.status)
            size += len(oj)
        if fill is not None:
            rows += ("f", None, None, fill.account, fill.order_id, fill_json, fill.id, None, None)
            size += len(fill_json)  # type: ignore[arg-type]
        for p in positions:
            pj = json.dumps(p)
            rows += ("p", None, None, account or "paper", None, pj, str(p["symbol"]), None, None)
            size += len(pj)
        if ledger:
            lj = json.dumps(ledger)
            rows += ("a", None, None, str(ledger["account"]), None, lj, None, None, None)
            size += len(lj)
        if state:
            for key, value in state.items():
                rows += ("s", None, None, None, None, value, key, None, None)
        return self._queue(_Write(kind, rows, size, self._loop.create_future()))

    def write_order(self, kind: str, ts: str, order: Order) -> asyncio.Future[None]:
        """``write(kind, ts=ts, order=order)``: an event whose payload is the order, and the
        order's row. The order path writes two of these per order."""
        if self._closed:
            raise JournalError(f"journal {self.path} is closed")
        js = _json(order)
        return self._queue(_Write(
            kind, ["eo", ts, kind, order.account, order.id, js, order.client_order_id, order.symbol, order.status],
            2 * len(js), self._loop.create_future(),  # the JSON is stored twice: event and row
        ))

    def _queue(self, w: _Write) -> asyncio.Future[None]:
        if self._checkpointing:
            self._interrupt_checkpoint()
        self._pending.append(w)
        self._settled.clear()
        if not self._draining:
            self._start_drain()  # behind a quiet checkpoint, if one is queued: interrupted above
        return w.future

    # The writer. Writes are queued on the loop (``_pending``); one job in aiosqlite's thread
    # (``_drain_in_thread``) commits them a batch at a time, each batch being what came while
    # the one before was committing, until none is left. So the loop goes on with the next
    # orders while a commit runs, and the thread starts the next commit without waiting for the
    # loop to hand it over. The job is queued by the write that finds none running; when it
    # ends, another is queued if writes came after its last look.

    def _start_drain(self) -> None:
        self._draining = True
        job = self._loop.create_future()
        job.add_done_callback(self._drained)
        self._db._tx.put_nowait((job, self._drain_in_thread))

    def _poll(self) -> None:
        # Once per turn of the loop while a drain runs, from its second batch on (a drain of one
        # batch is settled with the job's end): waking the loop from the thread would cost a
        # system call, for which the thread lets go of the GIL and must wait to get it back from
        # the busy loop (a forced switch each way, per commit).
        done = self._committed_batches
        while done:
            self._settle(*done.popleft())
        if self._drain_running:
            self._loop.call_soon(self._poll)
        else:
            self._polling = False

    def _drain_in_thread(self) -> _Settled | None:
        pending = self._pending
        tx = self._db._tx
        self._drain_running = True
        try:
            while True:
                batch = self._taken = []  # known to ``_drained`` if this job fails: none hangs
                while pending and len(batch) < _BATCH:
                    batch.append(pending.popleft())
                settled = self._commit_batch(batch)
                burst_full = self._unchecked >= CHECKPOINT_MAX_BYTES
                if not pending and not burst_full:
                    self._taken = None
                    return settled  # settled with the job's end: no poll at a desk's pace
                self._committed_batches.append(settled)  # settled by ``_poll``, on the loop
                self._taken = None
                if not self._polling:  # a second batch in this drain: the loop looks once per turn
                    self._polling = True
                    self._loop.call_soon_threadsafe(self._poll)
                if burst_full:  # a burst that does not end: no quiet to wait for
                    self._checkpoint_in_burst()
                if not pending or not tx.empty():  # a read or a checkpoint waits for the thread: let it run
                    return None
        finally:
            self._drain_running = False

    def _commit_batch(self, batch: list[_Write]) -> _Settled:
        _pace_switching(len(batch))
        failed: dict[int, BaseException] | None = None
        try:
            self._commit_in_thread(batch)
        except BaseException:  # noqa: BLE001 - one bad write must not sink the others
            failed = {}
            for i, w in enumerate(batch):
                try:
                    self._commit_in_thread([w])
                except BaseException as exc:  # noqa: BLE001 - reported to that write's caller
                    failed[i] = exc
        return batch, failed

    def _settle(self, batch: list[_Write], failed: dict[int, BaseException] | None) -> None:
        """On the loop: resolve a committed batch's futures, in write order."""
        self.commits += 1 if failed is None else len(batch) - len(failed)  # retried one by one
        self.writes += len(batch)
        for i, w in enumerate(batch):
            if w.kind and (failed is None or i not in failed):
                self.recent_kinds.append(w.kind)
            if w.future.done():
                continue
            if failed is not None and i in failed:
                w.future.set_exception(JournalError(f"journal write '{w.kind}' failed: {failed[i]}"))
            else:
                w.future.set_result(None)

    def _drained(self, job: asyncio.Future[_Settled | None]) -> None:
        self._draining = False
        while self._committed_batches:
            self._settle(*self._committed_batches.popleft())
        exc = job.exception() if not job.cancelled() else None
        if exc is not None:
            # a bug in the writer itself: every write it had not settled says so, none hangs (a
            # batch it had taken may or may not be on disk: its callers are told it failed)
            log.error("journal %s: the writer failed: %r", self.path, exc)
            taken, self._taken = self._taken or [], None
            for w in [*taken, *self._pending]:
                if not w.future.done():
                    w.future.set_exception(JournalError(f"journal write '{w.kind}' failed: {exc!r}"))
            self._pending.clear()
        elif (last := job.result()) is not None:
            self._settle(*last)
        if self._pending:
            self._start_drain()
            return
        if self._quiet is not None:
            self._quiet.cancel()  # quiet is counted from the last commit
            self._quiet = None
        if _normal_switch:  # a burst's last commits were not small: set it back if none follows
            self._loop.call_later(QUIET_SECONDS, self._end_burst)
        if self._unchecked >= CHECKPOINT_BYTES and not self._closed:
            # due: it runs if the desk stays quiet, else the next write comes first
            if QUIET_SECONDS > 0:
                self._quiet = self._loop.call_later(QUIET_SECONDS, self._quiet_checkpoint)
            else:
                self._quiet_checkpoint()
        self._check_settled()

    def _end_burst(self) -> None:
        if not self._draining and not self._pending:
            _pace_switching(0)

    def _quiet_checkpoint(self) -> None:
        # A failed or interrupted checkpoint loses nothing (the WAL keeps every commit): the
        # next one, or SQLite's backstop, copies it back.
        self._quiet = None
        if self._pending or self._draining or self._closed or self._checkpointing:
            return  # not quiet: due again after this burst's last commit
        before, self._checked_at = self._checked_at, self._committed  # a failed one is tried again after as much again
        with self._checkpoint_lock:
            self._checkpoint_cancelled = False
        self._checkpointing = True
        self._settled.clear()
        mark = self._checked_at
        job = self._loop.create_future()
        job.add_done_callback(lambda job: self._checkpointed(job, before, mark))
        self._db._tx.put_nowait((job, lambda: self._checkpoint_in_thread(True)))

    def _checkpointed(self, job: asyncio.Future[bool], before: int, mark: int) -> None:
        self._checkpointing = False
        exc = job.exception() if not job.cancelled() else None
        if exc is not None:  # the writes are durable; only said
            log.warning("journal %s: checkpoint failed (%s); the WAL keeps growing until one succeeds", self.path, exc)
        elif job.result():
            self._quiet_checkpoints += 1
        else:  # a write came: still due, at the next quiet spell (after that write's commit)
            if self._checked_at == mark:  # unless a burst's checkpoint has run since
                self._checked_at = before
            self.checkpoints_interrupted += 1
        self._check_settled()

    def _check_settled(self) -> None:
        if self.idle:
            self._settled.set()

    def _checkpoint_in_burst(self) -> None:
        self._checked_at = self._committed
        try:
            self._db._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self._burst_checkpoints += 1
        except Exception as exc:  # noqa: BLE001 - the writes are durable; only said
            log.warning("journal %s: checkpoint failed (%s); the WAL keeps growing until one succeeds", self.path, exc)

    def _interrupt_checkpoint(self) -> None:
        # Not started yet (queued, or the thread not yet awake): it will not start. Running:
        # under the lock its statement is still the one running in the database thread (every
        # read and commit there is one hop, so no other statement is open), and the interrupt
        # cannot land on whatever that thread runs next.
        with self._checkpoint_lock:
            self._checkpoint_cancelled = True
            if self._checkpoint_running:
                self._db._conn.interrupt()  # sqlite3_interrupt: callable from any thread

    @property
    def checkpoints(self) -> int:
        return self._quiet_checkpoints + self._burst_checkpoints

    @property
    def _unchecked(self) -> int:
        return self._committed - self._checked_at

    @property
    def idle(self) -> bool:
        """Nothing queued and no commit in flight."""
        return not self._draining and not self._pending and not self._checkpointing

    def _commit_in_thread(self, batch: list[_Write]) -> None:
        rows: list[Any] = []
        size = 0  # counted before the commit: nothing after it may fail, or the batch would be retried
        for w in batch:
            rows += w.rows
            size += w.size
        n = len(rows) // _WIDTH
        if not n:
            return
        conn = self._db._conn
        if n <= _ROWS:
            conn.execute(_INSERT[n], rows)  # its own transaction
        else:
            conn.execute("BEGIN")
            try:
                for i in range(0, n, _ROWS):
                    k = min(_ROWS, n - i)
                    conn.execute(_INSERT[k], rows[i * _WIDTH:(i + k) * _WIDTH])
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        self._committed += size

    def _checkpoint_in_thread(self, interruptible: bool) -> bool:
        """True when done, False when a write interrupted it."""
        with self._checkpoint_lock:
            if interruptible and self._checkpoint_cancelled:
                return False
            self._checkpoint_running = interruptible
        try:
            self._db._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            return True
        except sqlite3.OperationalError as exc:
            if interruptible and str(exc) == "interrupted":
                return False
            raise
        finally:
            with self._checkpoint_lock:
                self._checkpoint_running = False

    async def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        await self.write("", ts="")  # an empty kind writes no event: the audit trail stays clean

    # -- reading ---------------------------------------------------------------------------

    async def load(self) -> JournalContents:
        return await self._db._execute(self._load_in_thread)  # one hop, as in _prepare

    def _load_in_thread(self) -> JournalContents:
        db = self._db._conn
        orders = [Order.model_validate_json(r[0]) for r in db.execute("SELECT data FROM orders ORDER BY rowid")]
        fills = [Fill.model_validate_json(r[0]) for r in db.execute("SELECT data FROM fills ORDER BY rowid")]
        positions: dict[str, list[dict[str, Any]]] = {}
        for acct, data in db.execute("SELECT account, data FROM positions ORDER BY account, symbol"):
            positions.setdefault(acct, []).append(json.loads(data))
        accounts = {a: json.loads(d) for a, d in db.execute("SELECT account, data FROM accounts")}
        state = dict(db.execute("SELECT key, value FROM state").fetchall())
        count = db.execute("SELECT count(*) FROM events").fetchone()[0]
        return JournalContents(self.meta, orders, fills, positions, accounts, state, count)

    async def events(self, *, order_id: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        sql = "SELECT seq, ts, kind, account, order_id, data FROM events"
        args: tuple[Any, ...] = ()
        if order_id is not None:
            sql += " WHERE order_id = ?"
            args = (order_id,)
        sql += " ORDER BY seq DESC LIMIT ?"
        # One hop: a statement left open between hops (aiosqlite's execute, then fetchall) would
        # hold the database thread's connection mid-read while the writer's jobs run: a
        # checkpoint then finds the table locked, and its interrupt would end the read.
        rows = await self._db._execute(self._read_in_thread, sql, (*args, limit))
        return [
            {"seq": s, "ts": ts, "kind": k, "account": a, "order_id": o, "data": json.loads(d)}
            for s, ts, k, a, o, d in reversed(rows)
        ]

    def _read_in_thread(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return self._db._conn.execute(sql, args).fetchall()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._quiet is not None:
            self._quiet.cancel()
            self._quiet = None
        if self._checkpointing:
            self._interrupt_checkpoint()  # it loses nothing: the next open's first one copies it back
        await self._settled.wait()
        _pace_switching(0)
        await self._db.close()
