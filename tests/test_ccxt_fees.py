"""Fees in the base coin or a third currency, from the ccxt boundary to the ledger: the engine's
PnL and position must match the exchange's balances to the cent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from core import Engine, ManualClock, OrderRequest, OrderStatus, Settings
from core.events import Notice
from core.models import Liquidity, Market
from core.venues.ccxt_parse import fill_from_trade

from .loopback.binance import CCXT_OPTIONS as BINANCE_OPTIONS
from .loopback.binance import DEFAULT_MARKETS, DEFAULT_PRICES, LoopbackBinance, MarketSpec
from .loopback.okx import CCXT_OPTIONS as OKX_OPTIONS
from .loopback.okx import LoopbackOkx

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

BTC = "BTC/USDT"
START = D(1_000_000)  # USDT only: every base coin the account holds came from the test's trades
REST_ONLY = Settings(tracking={"websockets": False})
MARKET = Market(symbol=BTC, base="BTC", quote="USDT", tick_size=D("0.1"), lot_size=D("0.00001"))
CLOCK = ManualClock()


def trade(fee: dict[str, Any] | None = None, fees: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    t: dict[str, Any] = {"id": "7", "order": "9", "amount": 0.01, "price": 50000.0, "timestamp": 1_767_000_000_000,
                         "takerOrMaker": "taker", "fee": fee}
    if fees is not None:
        t["fees"] = fees
    return t


def bnb_rate(currency: str, quote: str) -> D | None:
    return D("600") if (currency, quote) == ("BNB", "USDT") else None


# -- the venue boundary ---------------------------------------------------------------------------


def test_a_quote_fee_is_booked_as_it_is() -> None:
    fill = fill_from_trade(BTC, trade({"cost": 0.5, "currency": "USDT"}), "9", CLOCK, MARKET)
    assert (fill.fee, fill.fee_currency, fill.base_fee, fill.fee_unpriced) == (D("0.5"), "USDT", 0, None)
    assert fill.timestamp == datetime.fromtimestamp(1_767_000_000, UTC) and fill.liquidity is Liquidity.TAKER


def test_a_base_fee_is_valued_at_the_fill_price_and_kept_out_of_the_position() -> None:
    fill = fill_from_trade(BTC, trade({"cost": 0.00001, "currency": "BTC"}), "9", CLOCK, MARKET)
    assert (fill.amount, fill.base_fee) == (D("0.01"), D("0.00001"))  # traded 0.01, received 0.00999
    assert (fill.fee, fill.fee_currency) == (D("0.5"), "USDT")  # 0.00001 x 50,000, exact


def test_a_third_currency_fee_is_valued_at_its_price_or_named() -> None:
    bnb = trade({"cost": 0.00083333, "currency": "BNB"})
    priced = fill_from_trade(BTC, bnb, "9", CLOCK, MARKET, bnb_rate)
    assert (priced.fee, priced.base_fee, priced.fee_unpriced) == (D("0.499998"), 0, None)
    unknown = fill_from_trade(BTC, bnb, "9", CLOCK, MARKET, lambda currency, quote: None)
    assert (unknown.fee, unknown.fee_unpriced) == (0, "0.00083333 BNB")  # never silently wrong


def test_several_fees_are_each_counted_once() -> None:
    # ccxt lists each currency in ``fees`` and leaves ``fee`` for a single one: no double count
    t = trade(None, [{"cost": 0.2, "currency": "USDT"}, {"cost": 0.00001, "currency": "BTC"},
                     {"cost": 0.001, "currency": "BNB"}])
    fill = fill_from_trade(BTC, t, "9", CLOCK, MARKET, bnb_rate)
    assert (fill.fee, fill.base_fee) == (D("0.2") + D("0.5") + D("0.6"), D("0.00001"))
    single = trade({"cost": 0.3, "currency": "USDT"}, [{"cost": 0.3, "currency": "USDT"}])
    assert fill_from_trade(BTC, single, "9", CLOCK, MARKET).fee == D("0.3")


# -- OKX: a buy pays in the base, a sell in the quote --------------------------------------------------


@pytest.fixture
async def okx() -> AsyncIterator[LoopbackOkx]:
    async with LoopbackOkx(balances={"USDT": START}) as srv:
        yield srv


def okx_engine(server: LoopbackOkx, db: Path) -> Engine:
    return Engine.live("okx", api_key=server.api_key, secret=server.api_secret, password=server.passphrase, db=db,
                       api_url=server.base_url, options=dict(OKX_OPTIONS), timeout_ms=2000, settings=REST_ONLY,
                       clock=ManualClock())


def market(side: str, amount: D) -> OrderRequest:
    return OrderRequest(symbol=BTC, side=side, type="market", amount=amount)  # type: ignore[arg-type]


async def test_okx_buy_then_sell_matches_the_exchange_to_the_cent(okx: LoopbackOkx, db: Path) -> None:
    async with okx_engine(okx, db) as engine:
        buy = await engine.place_order(market("buy", D("0.01")))
        assert buy.status is OrderStatus.FILLED and buy.fee == D("0.5")  # 0.00001 BTC at 50,000
        [pos] = await engine.get_positions()
        assert pos.size == okx.wallet("BTC").total == D("0.00999")  # what the account really holds
        assert pos.entry_price == D(50000)

        okx.set_price("BTC-USDT", "51000")
        sell = await engine.place_order(market("sell", pos.size))
        assert sell.status is OrderStatus.FILLED and okx.wallet("BTC").total == 0
        assert await engine.get_positions() == []  # flat: no dust left from the fee
        status = engine.account_status()
        usdt = okx.wallet("USDT").total
        assert status.balance == usdt  # exact, not only to the cent
        assert status.realized_pnl - status.fees == usdt - START
        assert (status.realized_pnl, status.fees) == (D("9.99"), D("0.5") + D("0.50949"))


# -- Binance: the fee in what a buy receives, or in BNB ---------------------------------------------------


def binance_engine(server: LoopbackBinance, db: Path) -> Engine:
    return Engine.live("binance", api_key=server.api_key, secret=server.api_secret, db=db, api_url=server.base_url,
                       options=dict(BINANCE_OPTIONS), timeout_ms=2000, settings=REST_ONLY, clock=ManualClock())


BNB = MarketSpec("BNBUSDT", "BNB", "USDT", tick_size=D("0.01"), step_size=D("0.001"), min_qty=D("0.001"),
                 max_qty=D("100000"), min_price=D("0.01"), max_price=D("1000000"), min_notional=D("5"))


async def test_binance_buy_fee_in_the_base_then_sell_matches_the_exchange(db: Path) -> None:
    async with LoopbackBinance(balances={"USDT": START}) as server:
        server.commission_asset = "received"  # as Binance charges without BNB
        async with binance_engine(server, db) as engine:
            await engine.place_order(market("buy", D("0.1")))
            [pos] = await engine.get_positions()
            assert pos.size == server.balance("BTC").total == D("0.0999")
            server.set_price("BTCUSDT", D("49000"))
            await engine.place_order(market("sell", pos.size))
            assert await engine.get_positions() == []
            status = engine.account_status()
            assert status.balance == server.balance("USDT").total
            assert status.realized_pnl - status.fees == server.balance("USDT").total - START


async def test_binance_bnb_fee_is_valued_at_the_bnb_price(db: Path) -> None:
    async with LoopbackBinance(markets=(*DEFAULT_MARKETS, BNB), prices={**DEFAULT_PRICES, "BNBUSDT": D(600)},
                               balances={"USDT": START, "BNB": D(10)}) as server:
        server.commission_asset = "BNB"
        async with binance_engine(server, db) as engine:
            notices = engine.events()
            buy = await engine.place_order(market("buy", D("0.02")))
            paid = D(10) - server.balance("BNB").total
            assert paid == D("0.00166667")  # 0.1% of 1,000 USDT, in BNB at 600
            assert buy.fee == paid * 600 and buy.fee_currency == "USDT"
            [pos] = await engine.get_positions()
            assert pos.size == D("0.02") and pos.fees == paid * 600  # BNB paid: the BTC is all there
            assert not [n for n in notices.drain() if isinstance(n, Notice) and "BNB" in n.text]


async def test_binance_bnb_fee_without_a_bnb_price_is_zero_and_said(db: Path) -> None:
    async with LoopbackBinance(prices={**DEFAULT_PRICES, "BNBUSDT": D(600)},  # no BNB/USDT market to price it
                               balances={"USDT": START, "BNB": D(10)}) as server:
        server.commission_asset = "BNB"
        async with binance_engine(server, db) as engine:
            notices = engine.events()
            buy = await engine.place_order(market("buy", D("0.02")))
            assert buy.status is OrderStatus.FILLED and buy.fee == 0
            [said] = [n for n in notices.drain() if isinstance(n, Notice) and "fee" in n.text]
            assert said.level == "warning" and "0.00166667 BNB" in said.text and buy.id in said.text
