"""The order entry's fee preview uses the market's own maker/taker rates: maker when the order
would rest (a limit that does not cross the last price, post-only), taker when it would take.

The paper venue here charges 0.1 % maker and 0.3 % taker (not the sim's defaults), and
BTC/USDT starts at 51,000 with the market standing still (``run_loops=False``)."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Checkbox, Static

from console.app import TradedeskApp
from core import Engine, ManualClock
from widgets.order_entry import OrderEntry

SIZE = (160, 45)


def desk(db: Path, clock: ManualClock) -> TradedeskApp:
    engine = Engine.paper(db=db, seed=7, clock=clock, maker_fee=D("0.001"), taker_fee=D("0.003"))
    return TradedeskApp(engine, run_loops=False, flush_interval=0, clock_interval=3600.0)


async def preview(pilot: Pilot, **fields: str) -> str:
    app: TradedeskApp = pilot.app  # type: ignore[assignment]
    entry = app.q(OrderEntry)
    for field, value in fields.items():
        entry.set_value(field, value)
    await pilot.pause()
    return str(entry.query_one("#entry-preview", Static).content)


async def test_the_fee_preview_uses_the_markets_maker_and_taker_rates(tmp_path: Path, clock: ManualClock) -> None:
    app = desk(tmp_path / "j.sqlite", clock)
    try:
        async with app.run_test(size=SIZE) as pilot:
            assert app.engine.markets()["BTC/USDT"].taker_fee == D("0.003")  # the sim's markets carry its rates
            # a buy limit below the last price rests: maker, 0.1 x 50,000 x 0.1 % = 5
            assert "Notional 5,000.00  fee ~5.00" in await preview(
                pilot, symbol="BTC/USDT", side="b", type="l", tif="gtc", amount="0.1", price="50000")
            # above the last price it crosses at once: taker, 5,200 x 0.3 %
            assert "Notional 5,200.00  fee ~15.60" in await preview(pilot, price="52000")
            # a sell limit above the last price rests: maker
            assert "fee ~5.20" in await preview(pilot, side="s")
            # IOC never rests, even below the last price: taker
            assert "fee ~15.00" in await preview(pilot, side="b", price="50000", tif="ioc")
            # post-only rests by definition: maker
            assert "fee ~5.00" in await preview(pilot, tif="po")
            # market: taker on the last price, 0.1 x 51,000 x 0.3 %
            assert "Notional 5,100.00  fee ~15.30" in await preview(pilot, type="m", tif="gtc", price="")
    finally:
        await app.engine.close()


async def test_a_market_without_fee_rates_says_the_fee_is_unknown(tmp_path: Path, clock: ManualClock) -> None:
    app = desk(tmp_path / "j.sqlite", clock)
    try:
        async with app.run_test(size=SIZE) as pilot:
            venue = app.engine.venue
            # as a ccxt exchange that does not report the market's fees
            venue.markets = {s: m.model_copy(update={"maker_fee": None, "taker_fee": None})
                             for s, m in venue.markets.items()}
            text = await preview(pilot, symbol="BTC/USDT", side="b", type="l", amount="0.1", price="50000")
            assert "Notional 5,000.00  fee unknown" in text
    finally:
        await app.engine.close()


async def test_a_reduce_only_order_previews_no_margin(tmp_path: Path, clock: ManualClock) -> None:
    """The engine holds no margin for a reduce-only order (trailing stops included): the preview
    must not show one."""
    app = desk(tmp_path / "j.sqlite", clock)
    try:
        async with app.run_test(size=SIZE) as pilot:
            text = await preview(pilot, symbol="BTC/USDT", side="s", type="l", amount="0.1", price="52000", leverage="2")
            assert "Margin 2,600.00" in text
            app.q(OrderEntry).query_one("#in-reduce_only", Checkbox).value = True
            assert "Margin none (reduce-only)" in await preview(pilot)
            app.q(OrderEntry).query_one("#in-reduce_only", Checkbox).value = False
            # a trailing stop is reduce-only by construction
            text = await preview(pilot, type="trailing", price="", leverage="1", trail="100")
            assert "trailing stop" in text and "Margin none (reduce-only)" in text
    finally:
        await app.engine.close()
