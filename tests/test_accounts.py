"""Several accounts from the config file: each its own venue, books and limits; one halt for all."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from core import Engine, EngineError, ManualClock, OrderRequest, OrderStatus

from .conftest import on_clock


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "desk.toml"
    path.write_text(text)
    return path


async def test_two_paper_accounts_trade_apart_and_halt_together(tmp_path: Path, clock: ManualClock) -> None:
    config = write(tmp_path, """
[accounts.main]
exchange = "sim"
[accounts.hedge]
exchange = "sim"
seed = 9
[accounts.hedge.risk]
max_order_notional = 1000
""")
    async with Engine.from_config(config, db=tmp_path / "j.sqlite", clock=clock) as engine:
        assert engine.accounts == ["main", "hedge"] and engine.account == "main"
        a = await engine.place_order(OrderRequest(symbol="BTC/USDT", side="buy", type="limit", amount=D("0.05"),
                                                  price=D("50000")))
        b = await engine.place_order(OrderRequest(symbol="BTC/USDT", side="buy", type="limit", amount=D("0.05"),
                                                  price=D("50000"), account="hedge"))
        assert (a.account, a.status) == ("main", OrderStatus.OPEN)
        assert b.status is OrderStatus.REJECTED and "max_order_notional 1000" in (b.error or "")  # per-account limit
        c = await engine.place_order(OrderRequest(symbol="BTC/USDT", side="buy", type="market", amount=D("0.01"),
                                                  account="hedge"))
        assert c.status is OrderStatus.FILLED
        assert [p.account for p in await engine.get_positions()] == ["hedge"]
        assert (await engine.get_account_status("main")).open_positions == 0
        report = await on_clock(clock, engine.halt_trading("both"), engine)
        assert {r.account for r in report.accounts} == {"main", "hedge"} and report.clean


def test_a_live_account_names_its_missing_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DESK_KEY", raising=False)
    config = write(tmp_path, """
[accounts.main]
exchange = "binance"
mode = "live"
api_key_env = "DESK_KEY"
secret_env = "DESK_SECRET"
""")
    with pytest.raises(EngineError, match="needs api_key_env and secret_env .*DESK_KEY"):
        Engine.from_config(config, db=tmp_path / "j.sqlite")


async def test_the_order_entry_sends_to_the_chosen_account(tmp_path: Path, clock: ManualClock) -> None:
    from console.app import TradedeskApp
    from widgets.order_entry import OrderEntry

    config = write(tmp_path, '[accounts.main]\nexchange = "sim"\n[accounts.hedge]\nexchange = "sim"\nseed = 9\n')
    engine = Engine.from_config(config, db=tmp_path / "j.sqlite", clock=clock)
    app = TradedeskApp(engine, run_loops=False, flush_interval=0, clock_interval=3600)
    try:
        async with app.run_test(size=(160, 45)) as pilot:
            entry = app.q(OrderEntry)
            entry.set_value("type", "m")
            entry.set_value("amount", "0.01")
            entry.set_value("account", "nope")
            assert entry.submit() is False and "one of main, hedge" in entry.errors["account"]
            entry.set_value("account", "hedge")
            assert entry.submit() is True
            await pilot.pause()
            workers = [w for w in app.workers if w.group == "orders"]
            if workers:
                await app.workers.wait_for_complete(workers)
            [order] = await engine.get_orders()
            assert (order.account, order.status) == ("hedge", OrderStatus.FILLED)
    finally:
        await engine.close()
