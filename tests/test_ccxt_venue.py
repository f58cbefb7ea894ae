"""The engine over ccxt's real binance class, against the loopback Binance server (no network)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal as D
from pathlib import Path

import pytest

from core import Engine, ManualClock, OrderRequest, OrderStatus, Settings, TradingState
from contextlib import suppress

from core.errors import OrderRejected, VenueError, VenueUnavailable
from core.config import TrackingSettings
from core.models import Market
from core.venues.ccxt_venue import CcxtCredentials, CcxtVenue
from core.venues.settlement import settlement_currency

from .loopback.binance import CCXT_OPTIONS, DEFAULT_MARKETS, LoopbackBinance, MarketSpec

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# REST only: a test that wants streams says so (test_ccxt_tracking.py); a stream the server does
# not serve would only log its failed handshakes here
FAST = Settings(halt={"deadline_seconds": 5, "retry_initial_seconds": 0.01, "retry_max_seconds": 0.05},
                tracking={"websockets": False})


def live(server: LoopbackBinance, db: Path, *, secret: str | None = None, timeout_ms: int = 2000) -> Engine:
    return Engine.live(
        "binance", api_key=server.api_key, secret=secret or server.api_secret, db=db, api_url=server.base_url,
        options=dict(CCXT_OPTIONS), timeout_ms=timeout_ms, settings=FAST,
    )


def paper(db: Path) -> Engine:
    return Engine.paper(db=db, clock=ManualClock())


@pytest.fixture
async def server() -> AsyncIterator[LoopbackBinance]:
    async with LoopbackBinance() as srv:
        yield srv


def limit(price: str, amount: str = "0.01", side: str = "buy") -> OrderRequest:
    return OrderRequest(symbol="BTC/USDT", side=side, type="limit", amount=D(amount), price=D(price))  # type: ignore[arg-type]


async def test_markets_feed_precision_and_limits(server: LoopbackBinance, db: Path) -> None:
    async with live(server, db) as engine:
        market = engine.markets()["BTC/USDT"]
        assert (market.tick_size, market.lot_size, market.min_notional) == (D("0.1"), D("0.0001"), D(5))
        refused = await engine.place_order(limit("49000.05"))
        assert refused.status is OrderStatus.REJECTED and "tick size 0.1" in (refused.error or "")
        assert server.count("POST", "/api/v3/order") == 0  # the risk check stopped it before the venue


async def test_place_lookup_cancel_round_trip_with_our_client_id(server: LoopbackBinance, db: Path) -> None:
    async with live(server, db) as engine:
        order = await engine.place_order(limit("49000"))
        assert order.status is OrderStatus.OPEN
        on_server = server.order_by_client_id(order.client_order_id)
        assert on_server is not None and on_server.is_open
        cancelled = await engine.cancel_order(order.id)
        assert cancelled.status is OrderStatus.CANCELLED
        assert server.open_orders() == []


async def test_market_order_books_exact_fills_and_fees_from_trades(server: LoopbackBinance, db: Path) -> None:
    async with live(server, db) as engine:
        order = await engine.place_order(OrderRequest(symbol="BTC/USDT", side="buy", type="market", amount=D("0.02")))
        assert order.status is OrderStatus.FILLED and order.filled == D("0.02")
        assert order.average_price == D(50000)
        assert order.fee == D("1")  # 0.1% of 1,000 USDT, in the quote asset
        [pos] = await engine.get_positions()
        assert pos.size == D("0.02") and pos.fees == D("1")


async def test_resting_order_fill_is_tracked_by_polling(server: LoopbackBinance, db: Path) -> None:
    async with live(server, db) as engine:
        order = await engine.place_order(limit("49900"))
        server.set_price("BTCUSDT", D("49800"))
        await engine.tick()
        filled = await engine.get_order_by_id(order.id)
        assert filled is not None and filled.status is OrderStatus.FILLED and filled.average_price == D("49900")
        await engine.tick()  # the same trade reported again is booked once
        assert (await engine.get_positions())[0].size == D("0.01")


async def test_modify_is_cancel_replace(server: LoopbackBinance, db: Path) -> None:
    async with live(server, db) as engine:
        order = await engine.place_order(limit("49000"))
        replacement = await engine.modify_order(order.id, price=D("49100"))
        assert replacement.id != order.id and replacement.price == D("49100")
        assert [o.client_order_id for o in server.open_orders()] == [replacement.client_order_id]


async def test_lost_answer_after_accept_gives_exactly_one_order(server: LoopbackBinance, db: Path) -> None:
    async with live(server, db, timeout_ms=300) as engine:
        server.drop_next_response_after_accept = True
        order = await engine.place_order(limit("49000"))
        assert order.status is OrderStatus.OPEN  # settled by looking the client id up, not resent
        assert server.count("POST", "/api/v3/order") == 1
        assert len(server.open_orders()) == 1
        journal = await engine.journal.load()  # type: ignore[union-attr]
        assert [(o.id, o.status) for o in journal.orders] == [(order.id, OrderStatus.OPEN)]


async def test_halt_through_a_429_storm_cancels_everything(server: LoopbackBinance, db: Path) -> None:
    async with live(server, db) as engine:
        for p in ("49000", "49100", "49200"):
            await engine.place_order(limit(p))
        server.status_429_next_n = 3
        report = await engine.halt_trading("rate-limited venue")
        assert report.clean, report.summary()
        assert server.open_orders() == []
        assert engine.trading_state is TradingState.HALTED


async def test_a_wrong_secret_is_a_clear_message_and_nothing_is_sent(server: LoopbackBinance, db: Path) -> None:
    engine = live(server, db, secret="not-the-secret")
    with pytest.raises(OrderRejected, match="refused the API key") as err:
        await engine.start()
    assert "not-the-secret" not in str(err.value)
    assert server.count("POST", "/api/v3/order") == 0
    async with paper(db) as reopened:  # the journal was closed cleanly and holds no order
        assert await reopened.get_orders() == []


async def test_restart_reconciles_fills_missed_while_down_and_adopts_external_orders(server: LoopbackBinance,
                                                                                      db: Path) -> None:
    from .loopback.binance import make_ccxt_binance

    async with live(server, db) as engine:
        filled_while_down = await engine.place_order(limit("49500"))
        cancelled_while_down = await engine.place_order(limit("49000"))
    server.fill(server.order_by_client_id(filled_while_down.client_order_id))  # type: ignore[arg-type]
    other = make_ccxt_binance(server)
    try:
        await other.load_markets()
        await other.cancel_order("", "BTC/USDT", {"clientOrderId": cancelled_while_down.client_order_id})
        await other.create_order("BTC/USDT", "limit", "sell", 0.01, 52000, {"clientOrderId": "otherdesk1"})
    finally:
        await other.close()
    async with live(server, db) as engine:
        assert (await engine.get_order_by_id(filled_while_down.id)).status is OrderStatus.FILLED  # type: ignore[union-attr]
        assert (await engine.get_order_by_id(cancelled_while_down.id)).status is OrderStatus.CANCELLED  # type: ignore[union-attr]
        [pos] = await engine.get_positions()
        assert pos.size == D("0.01") and pos.entry_price == D("49500")  # the missed fill, booked once
        [external] = [o for o in await engine.get_active_orders() if o.tag == "external"]
        assert (external.client_order_id, external.side.value, external.amount, external.price) == (
            "otherdesk1", "sell", D("0.01"), D("52000"))
        events = [e for e in await engine.journal.events() if e["kind"] == "reconciled"]  # type: ignore[union-attr]
        assert events[-1]["data"]["adopted"] == [external.id]
        report = await engine.halt_trading("end of day")  # adopted orders are halted too
        assert report.clean and server.open_orders() == []


async def test_paper_on_live_prices_simulates_fills_and_sends_nothing(server: LoopbackBinance, db: Path) -> None:
    engine = Engine.paper(db=db, exchange="binance", api_url=server.base_url, options=dict(CCXT_OPTIONS),
                          clock=ManualClock(), settings=FAST)
    async with engine:
        market = engine.markets()["BTC/USDT"]
        assert (market.tick_size, market.lot_size) == (D("0.1"), D("0.0001"))  # from the exchange
        assert engine.prices()["BTC/USDT"] == D(50000)  # its live price
        order = await engine.place_order(OrderRequest(symbol="BTC/USDT", side="buy", type="market", amount=D("0.1")))
        assert order.status is OrderStatus.FILLED and order.average_price == D("50000.1")  # one tick of spread
        resting = await engine.place_order(limit("49900", "0.1"))
        server.set_price("BTCUSDT", D("49850"))  # the exchange's price moves...
        await engine.tick()  # ...the paper venue follows it and fills the resting order
        assert (await engine.get_order_by_id(resting.id)).status is OrderStatus.FILLED  # type: ignore[union-attr]
        assert server.count("POST", "/api/v3/order") == 0 and server.orders == {}


async def test_partial_fill_of_a_resting_order_is_booked_from_its_trades(server: LoopbackBinance, db: Path) -> None:
    async with live(server, db) as engine:
        order = await engine.place_order(limit("49000", "0.01"))
        before = server.count("GET", "/api/v3/order")
        server.fill(server.order_by_client_id(order.client_order_id), qty=D("0.004"))  # type: ignore[arg-type]
        await engine.tick()
        got = await engine.get_order_by_id(order.id)
        assert got is not None and got.status is OrderStatus.PARTIALLY_FILLED and got.filled == D("0.004")
        await engine.tick()
        assert (await engine.get_positions())[0].size == D("0.004")  # booked once
        assert server.count("GET", "/api/v3/order") == before  # a resting order costs no per-order lookups


async def test_execution_status_unknown_is_settled_by_lookup_not_rejected(server: LoopbackBinance, db: Path) -> None:
    import ccxt.async_support as ccxt

    async with live(server, db) as engine:
        real = engine.venue._ex.create_order  # type: ignore[attr-defined]

        async def ambiguous(*a, **k):  # noqa: ANN002, ANN003, ANN202 - accepted, then "status unknown"
            await real(*a, **k)
            raise ccxt.OperationFailed('binance {"code":-1006,"msg":"Execution status unknown."}')

        engine.venue._ex.create_order = ambiguous  # type: ignore[attr-defined]
        order = await engine.place_order(limit("49000"))
        assert order.status is OrderStatus.OPEN and len(server.open_orders()) == 1


async def test_a_failed_ticker_does_not_lose_a_fill_read_in_the_same_poll(server: LoopbackBinance, db: Path) -> None:
    import ccxt.async_support as ccxt

    async with live(server, db) as engine:
        engine.venue._retry_deadline = 0.1  # type: ignore[attr-defined]
        order = await engine.place_order(limit("49000"))
        await engine.place_order(limit("48000"))  # keeps resting: its symbol's ticker is read each poll
        server.fill(server.order_by_client_id(order.client_order_id))  # type: ignore[arg-type]
        real = engine.venue._ex.fetch_ticker  # type: ignore[attr-defined]
        down = [True]

        async def flaky(*a, **k):  # noqa: ANN002, ANN003, ANN202 - down for the whole first poll
            if down[0]:
                raise ccxt.RequestTimeout("ticker timed out")
            return await real(*a, **k)

        engine.venue._ex.fetch_ticker = flaky  # type: ignore[attr-defined]
        with suppress(VenueError):
            await engine.tick()
        down[0] = False
        await engine.tick()
        assert (await engine.get_order_by_id(order.id)).status is OrderStatus.FILLED  # type: ignore[union-attr]
        assert (await engine.get_positions())[0].size == D("0.01")


async def test_trade_ids_repeated_on_another_symbol_are_both_booked(server: LoopbackBinance, db: Path) -> None:
    async with live(server, db) as engine:
        btc = await engine.place_order(OrderRequest(symbol="BTC/USDT", side="buy", type="market", amount=D("0.01")))
        import itertools

        server._trade_ids = itertools.count(server.trades[-1].id)  # the next trade reuses the id, on ETH
        eth = await engine.place_order(OrderRequest(symbol="ETH/USDT", side="buy", type="market", amount=D("0.1")))
        assert btc.filled == D("0.01") and eth.filled == D("0.1")
        assert {p.symbol for p in await engine.get_positions()} == {"BTC/USDT", "ETH/USDT"}


async def test_paper_on_live_prices_survives_an_exchange_hiccup(server: LoopbackBinance, db: Path) -> None:
    engine = Engine.paper(db=db, exchange="binance", api_url=server.base_url, options=dict(CCXT_OPTIONS),
                          clock=ManualClock(), settings=FAST)
    async with engine:
        server.status_5xx_next_n = 2
        await engine.tick()  # the prices stay as they were for this tick
        assert engine.prices()["BTC/USDT"] == D(50000)
        server.set_price("BTCUSDT", D("50100"))
        await engine.tick()
        assert engine.prices()["BTC/USDT"] == D("50100")


USDC_MARKETS = (
    MarketSpec("BTCUSDC", "BTC", "USDC", tick_size=D("0.1"), step_size=D("0.0001"), min_qty=D("0.0001"),
               max_qty=D("9000"), min_price=D("0.1"), max_price=D("1000000"), min_notional=D("5")),
)


async def test_an_account_on_a_usdc_market_counts_its_cash_in_usdc(db: Path) -> None:
    # only a BTC/USDC market and the account's USDC: the ledger starts from the USDC held, not 0 USDT
    async with LoopbackBinance(markets=USDC_MARKETS, prices={"BTCUSDC": D(50000)},
                               balances={"USDC": D("250000"), "BTC": D("2")}) as server:
        async with live(server, db) as engine:
            status = await engine.get_account_status()
            assert (status.currency, status.balance) == ("USDC", D("250000"))
            order = await engine.place_order(OrderRequest(symbol="BTC/USDC", side="buy", type="market",
                                                          amount=D("0.02")))
            assert order.status is OrderStatus.FILLED and order.fee_currency == "USDC"  # 0.1% of 1,000 USDC
            assert (await engine.get_account_status()).balance == D("249999")


async def test_the_held_quote_settles_and_a_configured_one_wins(db: Path) -> None:
    # USDT and USDC markets, and USDC/USDT: an account holding only USDC (and BTC bought with it)
    # settles in USDC; a configured currency is read as named; an unknown one is refused clearly
    markets = (*USDC_MARKETS, MarketSpec("USDCUSDT", "USDC", "USDT", tick_size=D("0.0001"), step_size=D("1"),
                                         min_qty=D("1"), max_qty=D("9000000"), min_price=D("0.0001"),
                                         max_price=D("2"), min_notional=D("5")), DEFAULT_MARKETS[0])
    async with LoopbackBinance(markets=markets, prices={"BTCUSDC": D(50000), "USDCUSDT": D(1), "BTCUSDT": D(50000)},
                               balances={"USDC": D("1200.5"), "BTC": D("1")}) as server:
        for configured, expected in ((None, ("USDC", D("1200.5"))), ("usdt", ("USDT", D(0)))):
            venue = CcxtVenue("binance", credentials=CcxtCredentials(server.api_key, server.api_secret),
                              api_url=server.base_url, options=dict(CCXT_OPTIONS), settlement_currency=configured,
                              tracking=TrackingSettings(websockets=False))
            try:
                await venue.connect()
                balance = await venue.fetch_balance()
                assert (balance.currency, balance.total) == expected
            finally:
                await venue.close()
        venue = CcxtVenue("binance", credentials=CcxtCredentials(server.api_key, server.api_secret),
                          api_url=server.base_url, options=dict(CCXT_OPTIONS), settlement_currency="EUR",
                          tracking=TrackingSettings(websockets=False))
        try:
            await venue.connect()
            with pytest.raises(OrderRejected, match=r"settlement currency 'EUR' is not the quote of any market "
                                                    r"\(quotes: USDC, USDT\)"):
                await venue.fetch_balance()
        finally:
            await venue.close()


def _market(symbol: str) -> Market:
    base, quote = symbol.split("/")
    return Market(symbol=symbol, base=base, quote=quote, tick_size=D("0.01"), lot_size=D("0.0001"))


def test_settlement_on_a_try_exchange_and_with_nothing_held() -> None:
    # BTCTurk-like: TRY and USDT quotes, USDT itself bought with TRY
    btcturk = [_market(s) for s in ("BTC/TRY", "ETH/TRY", "USDT/TRY", "BTC/USDT", "ETH/USDT")]
    assert settlement_currency(btcturk, {"TRY": D(10_000), "USDT": D(500), "BTC": D(1)}) == "TRY"
    assert settlement_currency(btcturk, {"USDT": D(500), "BTC": D(1)}) == "USDT"  # no TRY: USDT is the cash
    assert settlement_currency(btcturk, {}) == "TRY"  # nothing held: the quote of the most markets


# -- a rate limit's Retry-After (Binance bans an IP that keeps sending: HTTP 418) ------------------


def _times(server: LoopbackBinance, path: str, since: int) -> list[float]:
    return [t for _, p, t in server.request_times[since:] if p == path]


async def test_a_rate_limits_retry_after_is_waited_out_before_the_call_is_sent_again(
    server: LoopbackBinance, db: Path
) -> None:
    async with live(server, db) as engine:
        since = len(server.request_times)
        server.retry_after_seconds = 0.4  # longer than the retry backoff (<= 1 s, starting at 0.05 s)
        server.status_429_next_n = 1
        assert await engine.venue.fetch_open_orders("BTC/USDT") == []  # type: ignore[attr-defined]
        first, second = _times(server, "/api/v3/openOrders", since)
        assert second - first >= 0.4


async def test_a_retry_after_beyond_the_retry_deadline_gives_up_at_once_and_says_when(
    server: LoopbackBinance, db: Path
) -> None:
    async with live(server, db) as engine:
        since = len(server.request_times)
        server.retry_after_seconds = 30  # the venue's retry deadline is 5 s
        server.status_429_next_n = 1
        with pytest.raises(VenueUnavailable) as info:
            await engine.venue.fetch_open_orders("BTC/USDT")  # type: ignore[attr-defined]
        assert info.value.retry_after == 30 and "retry after 30 s" in str(info.value)
        assert len(_times(server, "/api/v3/openOrders", since)) == 1  # not sent again inside the 30 s
