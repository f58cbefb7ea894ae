"""The command line: every bad input ends in one line naming the problem, never a traceback."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from console.cli import main
from core.journal import Journal


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    out = capsys.readouterr()
    text = (out.err + out.out + (str(exit_.value.code) if isinstance(exit_.value.code, str) else "")).strip()
    assert exit_.value.code not in (0, None) or "tradedesk" in text
    return text


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    out = capsys.readouterr()
    assert exit_.value.code == 0
    assert out.out.startswith("tradedesk ") and out.out.count("\n") == 1 and out.err == ""  # $(tradedesk --version)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--bogus"], "tradedesk: unrecognized arguments: --bogus (see tradedesk --help)"),
        (["--seed", "x"], "--seed takes a whole number, got 'x'"),
        (["--seed", "-1"], "--seed must be >= 0, got -1"),
        (["--paper", "--live"], "not allowed with argument"),
        (["--live"], "--live needs a real exchange: add --venue <ccxt id>"),
        (["--venue", "binance", "--db", "/no/such/folder/j.sqlite"], "folder /no/such/folder does not exist"),
        # a typo in the exchange id: said before keys are asked for or anything starts
        (["--venue", "binanse"], "unknown exchange 'binanse': not a ccxt exchange id (did you mean binance"),
        (["--live", "--venue", "okxx"], "unknown exchange 'okxx': not a ccxt exchange id (did you mean okx?)"),
        (["--venue", "nosuchexchange"], "not a ccxt exchange id (ccxt's ids are lower case"),
        (["--db", "/no/such/folder/j.sqlite"], "folder /no/such/folder does not exist"),
    ],
)
def test_bad_flags_are_one_line(argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    text = run(argv, capsys)
    assert expected in text
    assert "Traceback" not in text and len(text.splitlines()) == 1


async def test_an_unknown_exchange_is_refused_at_start_in_one_line(tmp_path: Path) -> None:
    """Not only from the command line: a script's or a config file's exchange id is checked when
    the engine starts, before anything is sent (it was an AttributeError from deep in ccxt)."""
    from core import Engine
    from core.errors import TradedeskError

    engine = Engine.paper(db=tmp_path / "j.sqlite", exchange="binanse")
    with pytest.raises(TradedeskError, match=r"unknown exchange 'binanse': not a ccxt exchange id \(did you mean binance"):
        await engine.start()
    await engine.close()


def test_bad_config_names_the_setting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "desk.toml"
    bad.write_text("[risk]\nmax_leverage = -3\n")
    text = run(["--config", str(bad)], capsys)
    assert "risk.max_leverage" in text and len(text.splitlines()) == 1


def test_live_needs_keys_then_a_terminal(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("TRADEDESK_BINANCE_API_KEY", raising=False)
    assert "needs TRADEDESK_BINANCE_API_KEY and TRADEDESK_BINANCE_SECRET" in run(["--live", "--venue", "binance"], capsys)
    monkeypatch.setenv("TRADEDESK_BINANCE_API_KEY", "k")
    monkeypatch.setenv("TRADEDESK_BINANCE_SECRET", "s")
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert "needs a terminal" in run(["--live", "--venue", "binance"], capsys)


def test_a_config_live_account_without_keys_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("DESK_KEY", raising=False)
    config = tmp_path / "desk.toml"
    config.write_text('[accounts.main]\nexchange = "binance"\nmode = "live"\napi_key_env = "DESK_KEY"\n'
                      'secret_env = "DESK_SECRET"\n')
    text = run(["--config", str(config), "--db", str(tmp_path / "j.sqlite")], capsys)
    assert "account main: live trading on binance needs api_key_env and secret_env" in text
    assert len(text.splitlines()) == 1


def test_live_without_the_typed_confirmation_starts_nothing(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TRADEDESK_BINANCE_API_KEY", "k")
    monkeypatch.setenv("TRADEDESK_BINANCE_SECRET", "s")
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "yes")
    assert "not confirmed; nothing was started" in run(["--live", "--venue", "binance"], capsys)


def _tradedesk(*argv: str) -> list[str]:
    return [sys.executable, "-m", "console", *argv]


async def test_a_journal_in_use_is_one_line_and_leaves_the_terminal_alone(tmp_path: Path) -> None:
    """Refused before the screen is built: no escape codes, nothing drawn, exit code 2."""
    db = tmp_path / "journal.sqlite"
    held = await Journal.open(db)  # another console has it open
    try:
        proc = await asyncio.create_subprocess_exec(*_tradedesk("--db", str(db)), stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await held.close()
    assert proc.returncode == 2
    assert out == b""
    assert err.decode() == f"tradedesk: journal {db} is in use by another tradedesk process (database is locked)\n"


def test_a_corrupt_journal_is_one_line_and_leaves_the_terminal_alone(tmp_path: Path) -> None:
    db = tmp_path / "journal.sqlite"
    db.write_bytes(b"not a database " * 200)
    done = subprocess.run(_tradedesk("--db", str(db)), capture_output=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stdout == b""
    assert done.stderr.decode().startswith(f"tradedesk: journal {db} is corrupt") and done.stderr.count(b"\n") == 1
    assert b"\x1b" not in done.stderr
    assert db.read_bytes() == b"not a database " * 200


def test_the_command_keeps_parsed_style_sheets_in_the_user_cache_folder(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The console the command builds reads and writes console.styles_cache in the platform's
    user cache folder (XDG_CACHE_HOME here)."""
    import console.app

    built = []

    def capture(self: console.app.TradedeskApp, **kwargs: object) -> None:
        built.append(self)

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(console.app.TradedeskApp, "run", capture)
    main(["--db", str(tmp_path / "journal.sqlite")])
    [app] = built
    assert app._styles_cache is not None
    assert app._styles_cache.path == tmp_path / "cache" / "tradedesk" / "styles.pickle"
