"""The ``tradedesk`` command. Bad flags and bad config end in one line naming the problem."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import NoReturn

from core.config import ConfigError, Settings


# Pointed at another server (a loopback test exchange): keep start-up to the market list.
_TEST_SERVER_OPTIONS = {"fetchCurrencies": False, "fetchMargins": False, "fetchMarkets": {"types": ["spot"]}}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"tradedesk: {message} (see tradedesk --help)\n")


def _version() -> str:
    # importlib.metadata costs ~20 ms at import: only --version pays for it, not every start
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tradedesk")
    except PackageNotFoundError:
        return "0+unknown"


class _VersionAction(argparse.Action):
    def __init__(self, option_strings: list[str], dest: str, **kw: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        print(f"tradedesk {_version()}")  # stdout, as argparse's own version action
        parser.exit(0)


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seed takes a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"--seed must be >= 0, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="tradedesk",
        description="Terminal trading console. Paper trading on a simulated market unless told otherwise.",
        epilog="Export orders, fills and round trips to CSV: tradedesk export --db PATH --out DIR (see tradedesk export --help).",
    )
    p.add_argument("--db", type=Path, help="journal file (default: tradedesk/journal.sqlite in your user data folder)")
    p.add_argument("--config", type=Path, help="TOML config file (risk limits, breakers, keys, ...)")
    p.add_argument("--seed", type=_seed, default=7, help="seed of the simulated market (default 7)")
    p.add_argument("--venue", default="sim", help="'sim' (default) or a ccxt exchange id such as binance or okx")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--paper", action="store_true", help="simulated fills (the default)")
    mode.add_argument("--live", action="store_true", help="real orders with real money: asks you to type a confirmation")
    p.add_argument("--api-url", help="point the exchange client at another base URL (e.g. a local test server)")
    p.add_argument("--version", action=_VersionAction)
    return p


def default_db() -> Path:
    from platformdirs import user_data_path

    folder = user_data_path("tradedesk", appauthor=False)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "journal.sqlite"


def _when(flag: str, end_of_day: bool = False) -> Callable[[str], datetime]:
    """--since/--until: a date (YYYY-MM-DD) or an ISO time, in UTC unless it says otherwise.
    A date given to --until includes that whole day."""

    def parse(text: str) -> datetime:
        try:
            if len(text) == 10:
                day = date.fromisoformat(text)
                return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1 if end_of_day else 0)
            t = datetime.fromisoformat(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} takes a date (YYYY-MM-DD) or an ISO time, got {text!r}") from None
        return t.replace(tzinfo=UTC) if t.tzinfo is None else t

    return parse


def export_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tradedesk export",
                description="Write orders.csv, fills.csv and round_trips.csv from a journal, read-only.")
    p.add_argument("--db", type=Path, help="journal file (default: the console's journal in your user data folder)")
    p.add_argument("--out", type=Path, required=True, help="folder for the CSV files (created if missing)")
    p.add_argument("--since", type=_when("--since"), help="from this date or time (UTC, inclusive)")
    p.add_argument("--until", type=_when("--until", end_of_day=True), help="up to this date (inclusive) or time (UTC)")
    return p


def export_main(argv: list[str]) -> None:
    """``tradedesk export``: reads the journal read-only; never imports the console."""
    from platformdirs import user_data_path

    from core.analytics import Period
    from core.export import ExportError, export_journal
    from core.journal import JournalError
    from core.journal_reader import read_journal

    args = export_parser().parse_args(argv)
    db = args.db or user_data_path("tradedesk", appauthor=False) / "journal.sqlite"
    try:
        period = Period(args.since, args.until)
    except ValueError as exc:
        sys.exit(f"tradedesk export: {exc}")
    try:
        contents = read_journal(db)
        paths = export_journal(contents, args.out, period)
    except (JournalError, ExportError) as exc:
        sys.exit(f"tradedesk export: {exc}")
    for path in paths:
        print(path)


def confirm_live(where: str) -> None:
    if not sys.stdin.isatty():
        sys.exit("tradedesk: live trading asks for a typed confirmation and needs a terminal")
    answer = input(f"LIVE trading on {where}: real orders, real money. Type LIVE to go on: ")
    if answer.strip() != "LIVE":
        sys.exit("tradedesk: not confirmed; nothing was started")


def live_engine(args: argparse.Namespace, db: Path, settings: Settings):  # noqa: ANN201
    """Real orders, real money: keys from the environment, and a typed confirmation first."""
    from core import Engine

    prefix = f"TRADEDESK_{args.venue.upper()}_"
    api_key, secret = os.environ.get(prefix + "API_KEY"), os.environ.get(prefix + "SECRET")
    if not api_key or not secret:
        sys.exit(f"tradedesk: --live on {args.venue} needs {prefix}API_KEY and {prefix}SECRET in the environment")
    confirm_live(args.venue)
    options = _TEST_SERVER_OPTIONS if args.api_url else None
    return Engine.live(args.venue, api_key=api_key, secret=secret, password=os.environ.get(prefix + "PASSWORD"),
                       db=db, api_url=args.api_url, settings=settings, options=options)


def load_settings(config: Path | None) -> Settings:
    """The config file and TRADEDESK_* environment variables, or the defaults when there are
    neither: reading nothing through pydantic-settings cost ~20 ms of every start-up. (Keep in
    step with Settings.load if it ever reads another source.)"""
    if config is None and not any(k.upper().startswith("TRADEDESK_") for k in os.environ):
        return Settings.defaults()
    return Settings.load(config)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["export"]:  # a leading word: every console flag keeps working as it was
        export_main(argv[1:])
        return
    args = parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        sys.exit(f"tradedesk: {exc}")
    if args.live and args.venue == "sim":
        sys.exit("tradedesk: --live needs a real exchange: add --venue <ccxt id> (e.g. binance)")
    if args.venue != "sim":  # a typo is said first, before keys are asked for (ccxt is needed anyway)
        from core.errors import TradedeskError
        from core.venues.ccxt_venue import exchange_class

        try:
            exchange_class(args.venue)
        except TradedeskError as exc:
            sys.exit(f"tradedesk: {exc}")

    from platformdirs import user_cache_path

    from core import Engine
    from console.app import TradedeskApp

    def console_app(engine: Engine, *, live: bool, venue_label: str) -> TradedeskApp:
        # with the style sheets parsed and the code generated at the last start (console.styles_cache, code_cache)
        return TradedeskApp(engine, live=live, venue_label=venue_label,
                            cache_folder=user_cache_path("tradedesk", appauthor=False))

    db = args.db or default_db()
    if args.db is not None and not args.db.expanduser().parent.exists():
        sys.exit(f"tradedesk: --db {args.db}: folder {args.db.expanduser().parent} does not exist")
    if settings.accounts and args.venue == "sim" and not args.live:  # accounts from the config file
        from core.errors import EngineError

        live_ones = [f"{n} ({a.exchange})" for n, a in settings.accounts.items() if a.mode == "live"]
        try:
            engine = Engine.from_config(args.config, db=db)
        except EngineError as exc:
            sys.exit(f"tradedesk: {exc}")
        if live_ones:
            confirm_live(", ".join(live_ones))
        label = ", ".join(f"{n}:{a.exchange}" for n, a in settings.accounts.items())
        app = console_app(engine, live=bool(live_ones), venue_label=label)
    elif args.live:
        engine = live_engine(args, db, settings)
        app = console_app(engine, live=True, venue_label=args.venue)
    elif args.venue != "sim":  # paper trading on the exchange's live public prices: no keys
        options = _TEST_SERVER_OPTIONS if args.api_url else None
        engine = Engine.paper(db=db, exchange=args.venue, api_url=args.api_url, options=options, settings=settings)
        app = console_app(engine, live=False, venue_label=f"{args.venue} prices")
    else:
        engine = Engine.paper(db=db, seed=args.seed, settings=settings)
        app = console_app(engine, live=False, venue_label="sim")
    try:
        app.run()
    except KeyboardInterrupt:  # ctrl+c while the start still waited for the exchange: no screen yet
        sys.exit("tradedesk: interrupted while starting")
    if app.return_code:
        sys.exit(app.return_code)


if __name__ == "__main__":
    main()
