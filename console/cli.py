"""The ``tradedesk`` command. Bad flags and bad config end in one line naming the problem."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import NoReturn

from core.config import ConfigError, Settings


# Pointed at another server (a loopback test exchange): keep start-up to the market list.
_TEST_SERVER_OPTIONS = {"fetchCurrencies": False, "fetchMargins": False, "fetchMarkets": {"types": ["spot"]}}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"tradedesk: {message} (see tradedesk --help)\n")


def _version() -> str:
    try:
        return version("tradedesk")
    except PackageNotFoundError:
        return "0+unknown"


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
    )
    p.add_argument("--db", type=Path, help="journal file (default: tradedesk/journal.sqlite in your user data folder)")
    p.add_argument("--config", type=Path, help="TOML config file (risk limits, breakers, keys, ...)")
    p.add_argument("--seed", type=_seed, default=7, help="seed of the simulated market (default 7)")
    p.add_argument("--venue", default="sim", help="'sim' (default) or a ccxt exchange id such as binance or okx")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--paper", action="store_true", help="simulated fills (the default)")
    mode.add_argument("--live", action="store_true", help="real orders with real money: asks you to type a confirmation")
    p.add_argument("--api-url", help="point the exchange client at another base URL (e.g. a local test server)")
    p.add_argument("--version", action="version", version=f"tradedesk {_version()}")
    return p


def default_db() -> Path:
    from platformdirs import user_data_path

    folder = user_data_path("tradedesk", appauthor=False)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "journal.sqlite"


def confirm_live(where: str) -> None:
    if not sys.stdin.isatty():
        sys.exit("tradedesk: live trading asks for a typed confirmation and needs a terminal")
    answer = input(f"LIVE trading on {where}: real orders, real money. Type LIVE to go on: ")
    if answer.strip() != "LIVE":
        sys.exit("tradedesk: not confirmed; nothing was started")


def live_engine(args: argparse.Namespace, db: Path, settings: Settings):  # noqa: ANN201
    """Real orders, real money: keys from the environment, and a typed confirmation first."""
    import os

    from core import Engine

    prefix = f"TRADEDESK_{args.venue.upper()}_"
    api_key, secret = os.environ.get(prefix + "API_KEY"), os.environ.get(prefix + "SECRET")
    if not api_key or not secret:
        sys.exit(f"tradedesk: --live on {args.venue} needs {prefix}API_KEY and {prefix}SECRET in the environment")
    confirm_live(args.venue)
    options = _TEST_SERVER_OPTIONS if args.api_url else None
    return Engine.live(args.venue, api_key=api_key, secret=secret, password=os.environ.get(prefix + "PASSWORD"),
                       db=db, api_url=args.api_url, settings=settings, options=options)


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        settings = Settings.load(args.config)
    except ConfigError as exc:
        sys.exit(f"tradedesk: {exc}")
    if args.live and args.venue == "sim":
        sys.exit("tradedesk: --live needs a real exchange: add --venue <ccxt id> (e.g. binance)")

    from core import Engine
    from console.app import TradedeskApp

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
        app = TradedeskApp(engine, live=bool(live_ones), venue_label=label)
    elif args.live:
        engine = live_engine(args, db, settings)
        app = TradedeskApp(engine, live=True, venue_label=args.venue)
    elif args.venue != "sim":  # paper trading on the exchange's live public prices: no keys
        options = _TEST_SERVER_OPTIONS if args.api_url else None
        engine = Engine.paper(db=db, exchange=args.venue, api_url=args.api_url, options=options, settings=settings)
        app = TradedeskApp(engine, live=False, venue_label=f"{args.venue} prices")
    else:
        engine = Engine.paper(db=db, seed=args.seed, settings=settings)
        app = TradedeskApp(engine, live=False, venue_label="sim")
    app.run()
    if app.return_code:
        sys.exit(app.return_code)


if __name__ == "__main__":
    main()
