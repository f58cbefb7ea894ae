"""Read a journal file without the engine, read-only: for ``tradedesk export`` and scripts.

The file is opened with SQLite's ``mode=ro``: nothing is ever written to it. (For a WAL journal
SQLite may leave empty ``-wal``/``-shm`` side files next to it; the journal itself is untouched.)
A running console holds the journal's EXCLUSIVE lock, so reading it then fails at once with a
message that says what to do.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

from core.journal import APP_ID, SCHEMA_VERSION, JournalContents, JournalError
from core.models import Fill, Order

IN_USE_HINT = "stop it or export from the console (f5 Stats, then e)"


def read_journal(path: str | os.PathLike[str]) -> JournalContents:
    """Everything the journal holds (orders, fills, positions, accounts, state). Raises
    ``JournalError`` naming the problem: missing, locked, not a tradedesk journal, too new."""
    p = Path(path).expanduser()
    if not p.exists():
        raise JournalError(f"journal {p} does not exist")
    if not p.is_file():
        raise JournalError(f"journal {p} is not a file")
    try:
        conn = sqlite3.connect(f"file:{quote(str(p.resolve()))}?mode=ro", uri=True, timeout=0.2)
    except sqlite3.Error as exc:
        raise JournalError(f"cannot open journal {p}: {exc}") from None
    try:
        return _read(conn, p)
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise JournalError(f"the journal {p} is in use by a running tradedesk; {IN_USE_HINT}") from None
        raise JournalError(f"cannot read journal {p}: {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"{p} is not a tradedesk journal ({exc})") from None
    finally:
        conn.close()


def _read(conn: sqlite3.Connection, p: Path) -> JournalContents:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not {"meta", "orders", "fills", "accounts"} <= tables:
        raise JournalError(f"{p} is not a tradedesk journal")
    meta: dict[str, str] = dict(conn.execute("SELECT key, value FROM meta"))
    if meta.get("app") != APP_ID:
        raise JournalError(f"{p} is not a tradedesk journal")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise JournalError(f"journal {p} has schema v{version}, newer than this tradedesk understands "
                           f"(v{SCHEMA_VERSION}): upgrade tradedesk")
    orders = [Order.model_validate_json(r[0]) for r in conn.execute("SELECT data FROM orders ORDER BY rowid")]
    fills = [Fill.model_validate_json(r[0]) for r in conn.execute("SELECT data FROM fills ORDER BY rowid")]
    positions: dict[str, list[dict[str, Any]]] = {}
    for acct, data in conn.execute("SELECT account, data FROM positions ORDER BY account, symbol"):
        positions.setdefault(acct, []).append(json.loads(data))
    accounts = {a: json.loads(d) for a, d in conn.execute("SELECT account, data FROM accounts")}
    state = dict(conn.execute("SELECT key, value FROM state"))
    count = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    return JournalContents(meta, orders, fills, positions, accounts, state, count)
