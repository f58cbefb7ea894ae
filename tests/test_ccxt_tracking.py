"""Order tracking on ccxt venues: the adaptive polling schedule, websocket streams (ccxt.pro's
real binance class against the loopback's streams) with polling taking over when they drop,
periodic market refresh and fees from the markets. Time moves only with ``ManualClock``."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from core import Engine, ManualClock, OrderRequest, OrderStatus, Settings
from core.config import ConfigError, TrackingSettings
from core.models import Market
from core.venues.ccxt_streams import CcxtStreams
from core.venues.ccxt_tracker import CcxtTracker
from core.venues.tracker import PollSchedule

from .loopback.binance import CCXT_OPTIONS, LoopbackBinance

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

OPEN_ORDERS = ("GET", "/api/v3/openOrders")
LOOKUP = ("GET", "/api/v3/order")
TRADES = ("GET", "/api/v3/myTrades")
TICKER = ("GET", "/api/v3/ticker/24hr")
REST_READS = (OPEN_ORDERS, LOOKUP, TRADES, TICKER)


def settings(**tracking: Any) -> Settings:
    return Settings(halt={"deadline_seconds": 5, "retry_initial_seconds": 0.01, "retry_max_seconds": 0.05},
                    tracking=tracking)


def live(server: LoopbackBinance, db: Path, clock: ManualClock, **tracking: Any) -> Engine:
    return Engine.live("binance", api_key=server.api_key, secret=server.api_secret, db=db, api_url=server.base_url,
                       options=dict(CCXT_OPTIONS), timeout_ms=2000, clock=clock, settings=settings(**tracking))


def limit(price: str, amount: str = "0.01", side: str = "buy", symbol: str = "BTC/USDT") -> OrderRequest:
    return OrderRequest(symbol=symbol, side=side, type="limit", amount=D(amount), price=D(price))  # type: ignore[arg-type]


def reads(server: LoopbackBinance) -> dict[tuple[str, str], int]:
    return {k: server.requests[k] for k in REST_READS}


def tracker(engine: Engine) -> CcxtTracker:
    return engine.venue._tracker  # type: ignore[attr-defined, no-any-return]


async def until(engine: Engine, cond: Callable[[], bool], what: str) -> None:
    """Await stream activity until ``cond`` holds (the timeout only guards a broken test)."""
    news = tracker(engine).activity
    try:
        async with asyncio.timeout(10):
            while not cond():
                news.clear()
                await news.wait()
    except TimeoutError:
        raise AssertionError(f"never happened: {what}") from None


@pytest.fixture
async def server() -> AsyncIterator[LoopbackBinance]:
    async with LoopbackBinance() as srv:
        yield srv


@pytest.fixture
async def streaming(server: LoopbackBinance) -> LoopbackBinance:
    server.streams.enabled = True
    return server


# -- the schedule --------------------------------------------------------------------------------------


def _intervals(s: PollSchedule, key: str, now: float, looks: int) -> list[float]:
    out = []
    for _ in range(looks):
        due = s.due_at(key)
        assert due is not None
        out.append(round(due - now, 3))
        now = due
        s.looked(key, now, changed=False)
    return out


def test_fresh_orders_are_looked_at_fast_then_less_and_less_until_the_resting_pace() -> None:
    s = PollSchedule(fast=0.5, slow=5.0, fresh_for=10.0, streamed=30.0)
    s.add("a", "BTC/USDT", now=100.0)
    assert s.due(100.0) == {"BTC/USDT": ["a"]}  # the first look is at once
    s.looked("a", 100.0, changed=False)
    got = _intervals(s, "a", 100.0, 26)
    assert got[:20] == [0.5] * 20  # fresh for 10 s
    assert got[20:] == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]  # then decaying to the resting pace


def test_a_change_makes_an_order_fresh_again_and_a_stream_makes_looks_rare() -> None:
    s = PollSchedule(fast=0.5, slow=5.0, fresh_for=10.0, streamed=30.0)
    s.add("a", "BTC/USDT", now=0.0)
    s.looked("a", 0.0, changed=False)
    _intervals(s, "a", 0.0, 24)  # resting: every 5 s
    s.looked("a", 100.0, changed=True)
    assert s.due_at("a") == 100.5
    s.looked("a", 100.5, changed=False, streamed=True)
    assert s.due_at("a") == 130.5  # a stream reports it: only a safety-net look
    s.add("b", "ETH/USDT", now=110.0, streamed=True)
    assert s.due(110.0) == {} and s.due_at("b") == 140.0
    s.hurry(["a", "b"], at=111.0)  # the stream dropped: polling takes over at once
    assert s.due(111.0) == {"BTC/USDT": ["a"], "ETH/USDT": ["b"]}
    s.retry(["a"], now=111.0)  # a failed look comes back soon, not at once
    assert s.due_at("a") == 111.5


def test_tracking_settings_are_checked_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEDESK_TRACKING__SLOW_POLL_SECONDS", "0.1")
    with pytest.raises(ConfigError, match=r"tracking: .*slow_poll_seconds \(0.1\) must not be below fast_poll_seconds"):
        Settings.load()
    assert TrackingSettings().fast_poll_seconds == 0.5 and TrackingSettings().slow_poll_seconds == 5.0


# -- stream reconnects ------------------------------------------------------------------------------------


class _FakeExchange:
    has = {"watchOrders": True}

    async def close(self) -> None:
        return None


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_dead_stream_is_retried_with_growing_backoff_and_afresh_after_it_worked() -> None:
    clock = ManualClock()
    states: list[tuple[str, str]] = []
    outcomes: list[Any] = [OSError("refused")] * 3 + ["update", OSError("dropped"), OSError("refused")]
    delivered: list[Any] = []
    never = asyncio.get_running_loop().create_future()

    async def watch() -> Any:
        if not outcomes:
            return await never
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def deliver(data: Any) -> None:
        delivered.append(data)

    streams = CcxtStreams(_FakeExchange(), clock, retry_initial=1.0, retry_max=60.0,
                          on_state=lambda key, state: states.append((key, state)))
    streams.start("orders", watch, deliver)
    waits = []
    for _ in range(4):
        await _settle()
        deadline = clock.next_deadline()
        assert deadline is not None
        waits.append(deadline - clock.monotonic())
        clock.advance(waits[-1])
    await _settle()
    assert 1.0 <= waits[0] <= 1.5 and 2.0 <= waits[1] <= 2.5 and 4.0 <= waits[2] <= 4.5  # backoff with jitter
    assert waits[3] == pytest.approx(1.0)  # it streamed, then dropped: the backoff starts afresh
    assert delivered == ["update"]
    assert [s for _, s in states] == ["starting", "down", "down", "down", "up", "down", "down"]  # each failure told
    assert streams.state("orders") == "down" and "refused" in streams.errors["orders"]
    await streams.close()
    assert not streams.running("orders")


# -- polling over REST ----------------------------------------------------------------------------------


async def test_polling_is_fast_for_fresh_orders_and_slow_for_resting_ones(server: LoopbackBinance, db: Path) -> None:
    clock = ManualClock()
    async with live(server, db, clock, websockets=False) as engine:
        await engine.place_order(limit("49000"))
        start = server.count(*OPEN_ORDERS)
        await engine.tick()
        await engine.tick()  # nothing due in between: no request
        assert server.count(*OPEN_ORDERS) == start + 1
        for _ in range(20):  # fresh for 10 s: a look every 0.5 s
            clock.advance(0.5)
            await engine.tick()
        assert server.count(*OPEN_ORDERS) == start + 21
        for _ in range(120):  # the next 30 s at the engine's 0.25 s tick: 1, 2, 4, 5, 5, 5, 5 s
            clock.advance(0.25)
            await engine.tick()
        assert server.count(*OPEN_ORDERS) == start + 21 + 7
        assert server.count(*LOOKUP) == 0  # a resting order never costs a lookup


async def test_a_partial_fill_makes_a_resting_order_fresh_again(server: LoopbackBinance, db: Path) -> None:
    clock = ManualClock()
    async with live(server, db, clock, websockets=False) as engine:
        order = await engine.place_order(limit("49000"))
        for _ in range(60):  # 15 s: resting now, looked at every few seconds
            await engine.tick()
            clock.advance(0.25)
        server.fill(server.order_by_client_id(order.client_order_id), qty=D("0.004"))  # type: ignore[arg-type]
        for _ in range(20):  # within the resting interval the fill is seen...
            await engine.tick()
            clock.advance(0.25)
        got = await engine.get_order_by_id(order.id)
        assert got is not None and got.status is OrderStatus.PARTIALLY_FILLED and got.filled == D("0.004")
        before = server.count(*OPEN_ORDERS)
        for _ in range(8):  # ...and the order is fresh again: looked at every 0.5 s
            clock.advance(0.25)
            await engine.tick()
        assert server.count(*OPEN_ORDERS) == before + 4
        assert (await engine.get_positions())[0].size == D("0.004")  # booked once


async def test_one_open_orders_read_per_symbol_covers_all_its_orders(server: LoopbackBinance, db: Path) -> None:
    clock = ManualClock()
    async with live(server, db, clock, websockets=False) as engine:
        for price in ("49000", "49100", "49200"):
            await engine.place_order(limit(price))
        eth = await engine.place_order(limit("2900", "0.1", symbol="ETH/USDT"))
        start = reads(server)
        server.fill(server.order_by_client_id(eth.client_order_id))  # type: ignore[arg-type]
        await engine.tick()
        symbols = [p.get("symbol") for m, path, p in server.request_log if (m, path) == OPEN_ORDERS][-2:]
        assert sorted(symbols) == ["BTCUSDT", "ETHUSDT"]
        assert server.count(*OPEN_ORDERS) == start[OPEN_ORDERS] + 2
        assert server.count(*LOOKUP) == start[LOOKUP] + 1  # only the order that left the book
        assert (await engine.get_order_by_id(eth.id)).status is OrderStatus.FILLED  # type: ignore[union-attr]


async def test_positions_stay_marked_without_open_orders_with_one_tickers_read(server: LoopbackBinance,
                                                                               db: Path) -> None:
    clock = ManualClock()
    async with live(server, db, clock, websockets=False, price_poll_seconds=2.0) as engine:
        for sym in ("BTC/USDT", "ETH/USDT"):
            await engine.place_order(OrderRequest(symbol=sym, side="buy", type="market", amount=D("0.01")))
        await engine.tick()
        server.set_price("BTCUSDT", D("51000"))
        server.set_price("ETHUSDT", D("3100"))
        start = server.count(*TICKER)
        clock.advance(1.0)
        await engine.tick()
        assert server.count(*TICKER) == start  # not due yet
        clock.advance(1.0)
        await engine.tick()
        assert server.count(*TICKER) == start + 1  # both symbols in one request
        assert server.request_log[-1][2].get("symbols") == '["BTCUSDT","ETHUSDT"]'
        assert engine.prices() == {"BTC/USDT": D(51000), "ETH/USDT": D(3100)}
        btc = next(p for p in await engine.get_positions() if p.symbol == "BTC/USDT")
        assert btc.unrealized_pnl == D("10")  # 0.01 x (51000 - 50000): marked with no order open


# -- websocket streams -----------------------------------------------------------------------------------


async def _streams_up(engine: Engine, server: LoopbackBinance) -> Any:
    """Place a resting order; its NEW event proves the order stream; a poll schedules it."""
    order = await engine.place_order(limit("49000"))
    await until(engine, lambda: tracker(engine).stream_state("orders") == "up", "the order stream is up")
    await engine.tick()
    return order


async def test_a_fill_arrives_by_stream_without_any_rest_poll(streaming: LoopbackBinance, db: Path) -> None:
    server, clock = streaming, ManualClock()
    async with live(server, db, clock) as engine:
        order = await _streams_up(engine, server)
        before = reads(server)
        server.fill(server.order_by_client_id(order.client_order_id), qty=D("0.004"))  # type: ignore[arg-type]
        await until(engine, lambda: bool(tracker(engine)._outbox), "the partial fill is streamed")
        await engine.tick()
        got = await engine.get_order_by_id(order.id)
        assert got is not None and got.status is OrderStatus.PARTIALLY_FILLED and got.filled == D("0.004")
        server.fill(server.order_by_client_id(order.client_order_id))  # type: ignore[arg-type]
        await until(engine, lambda: bool(tracker(engine)._outbox), "the last fill is streamed")
        await engine.tick()
        got = await engine.get_order_by_id(order.id)
        assert got is not None and got.status is OrderStatus.FILLED and got.average_price == D(49000)
        assert got.fee == D("0.49")  # both trades' exact commissions, from the stream
        assert (await engine.get_positions())[0].size == D("0.01")  # booked once
        for _ in range(8):  # and no polling while the stream covers the orders
            clock.advance(0.5)
            await engine.tick()
        assert reads(server) == before
        assert server.streams.connections["user"] == 1


async def test_when_the_stream_drops_polling_takes_over_until_it_is_back(streaming: LoopbackBinance,
                                                                         db: Path) -> None:
    server, clock = streaming, ManualClock()
    async with live(server, db, clock) as engine:
        first = await _streams_up(engine, server)
        second = await engine.place_order(limit("48000"))
        server.streams.refuse = True
        await server.streams.drop()
        await until(engine, lambda: tracker(engine).stream_state("orders") == "down", "the order stream is down")
        server.fill(server.order_by_client_id(first.client_order_id))  # type: ignore[arg-type]  # nobody streams it
        before = reads(server)
        await engine.tick()  # polling took over at once
        assert (await engine.get_order_by_id(first.id)).status is OrderStatus.FILLED  # type: ignore[union-attr]
        assert server.count(*OPEN_ORDERS) == before[OPEN_ORDERS] + 1
        clock.advance(1.0)  # the reconnect is refused, the venue keeps polling
        await until(engine, lambda: "503" in tracker(engine).streams.errors.get("orders", ""),  # type: ignore[union-attr]
                    "a reconnect was tried")
        assert tracker(engine).stream_state("orders") == "down"
        server.streams.refuse = False
        clock.advance(5.0)  # past the backoff
        await server.streams.wait_subscribed(2)
        server.fill(server.order_by_client_id(second.client_order_id))  # type: ignore[arg-type]
        await until(engine, lambda: tracker(engine).stream_state("orders") == "up", "the stream is back")
        await until(engine, lambda: bool(tracker(engine)._outbox), "the fill is streamed again")
        await engine.tick()
        assert (await engine.get_order_by_id(second.id)).status is OrderStatus.FILLED  # type: ignore[union-attr]
        assert (await engine.get_positions())[0].size == D("0.02")


async def test_ticker_stream_marks_positions_without_ticker_reads(streaming: LoopbackBinance, db: Path) -> None:
    server, clock = streaming, ManualClock()
    async with live(server, db, clock) as engine:
        await engine.place_order(OrderRequest(symbol="BTC/USDT", side="buy", type="market", amount=D("0.01")))
        await engine.tick()  # starts the BTC/USDT ticker stream
        await until(engine, lambda: tracker(engine).stream_state("ticker:BTC/USDT") == "up", "the ticker streams")
        start = server.count(*TICKER)
        server.set_price("BTCUSDT", D("50500"))
        await until(engine, lambda: tracker(engine)._stream_prices.get("BTC/USDT") == D(50500), "the price streams")
        clock.advance(5.0)
        await engine.tick()
        assert engine.prices()["BTC/USDT"] == D(50500)
        assert (await engine.get_positions())[0].unrealized_pnl == D(5)
        assert server.count(*TICKER) == start  # no REST ticker while the stream runs


# -- markets -------------------------------------------------------------------------------------------------


async def test_markets_are_refreshed_and_feed_the_risk_checks(server: LoopbackBinance, db: Path) -> None:
    clock = ManualClock()
    async with live(server, db, clock, websockets=False, markets_refresh_minutes=10) as engine:
        ok = await engine.place_order(limit("49000.5"))
        assert ok.status is OrderStatus.OPEN
        server.markets["BTCUSDT"] = replace(server.markets["BTCUSDT"], tick_size=D("1"))  # a copy: the spec is shared
        clock.advance(9 * 60)
        await engine.tick()
        assert engine.markets()["BTC/USDT"].tick_size == D("0.1")  # not yet
        clock.advance(60)
        await engine.tick()
        assert server.count("GET", "/api/v3/exchangeInfo") == 2
        assert engine.markets()["BTC/USDT"].tick_size == D("1")
        refused = await engine.place_order(limit("49000.5"))
        assert refused.status is OrderStatus.REJECTED and "tick size 1" in (refused.error or "")
        assert server.count("POST", "/api/v3/order") == 1  # the risk check stopped it before the venue


async def test_a_failed_market_refresh_keeps_the_markets_and_tries_again(server: LoopbackBinance, db: Path) -> None:
    clock = ManualClock()
    async with live(server, db, clock, websockets=False, markets_refresh_minutes=10) as engine:
        engine.venue._retry_deadline = 0.05  # type: ignore[attr-defined]
        server.markets["BTCUSDT"] = replace(server.markets["BTCUSDT"], tick_size=D("1"))  # a copy: the spec is shared
        server.status_5xx_next_n = 1000
        clock.advance(600)
        with pytest.raises(Exception, match="unreachable|no clear answer"):
            await engine.tick()  # nothing else to report: the engine hears the venue is failing
        assert engine.markets()["BTC/USDT"].tick_size == D("0.1")
        server.status_5xx_next_n = 0
        clock.advance(60)
        await engine.tick()
        assert engine.markets()["BTC/USDT"].tick_size == D("1")


async def test_fee_estimates_come_from_the_market_fees(server: LoopbackBinance, db: Path) -> None:
    clock = ManualClock()
    async with live(server, db, clock, websockets=False) as engine:
        market = engine.markets()["BTC/USDT"]
        assert (market.maker_fee, market.taker_fee) == (D("0.001"), D("0.001"))  # from ccxt's market
        assert market.estimate_fee(D(10_000)) == D(10) and market.estimate_fee(D(10_000), maker=True) == D(10)
        order = await engine.place_order(OrderRequest(symbol="BTC/USDT", side="buy", type="market", amount=D("0.02")))
        assert order.fee == market.estimate_fee(order.amount * order.average_price)  # type: ignore[operator]
    unknown = Market(symbol="X/Y", base="X", quote="Y", tick_size=D("0.1"), lot_size=D("0.1"))
    assert unknown.estimate_fee(D(100)) is None



async def test_an_order_update_waits_for_its_trades_and_each_trade_counts_once(streaming: LoopbackBinance,
                                                                                db: Path) -> None:
    # The exchange may send an order's update before its trades (ccxt resolves them on two
    # streams): fed here in that order, by hand, in ccxt's shapes.
    server, clock = streaming, ManualClock()
    async with live(server, db, clock) as engine:
        order = await _streams_up(engine, server)
        tr = tracker(engine)
        oid = order.venue_order_id

        def trade(tid: str, amount: float) -> dict[str, Any]:
            return {"id": tid, "order": oid, "amount": amount, "price": 49000.0, "takerOrMaker": "maker",
                    "fee": {"cost": round(amount * 49, 8), "currency": "USDT"}, "timestamp": 1_767_605_400_000}

        closed = {"id": oid, "clientOrderId": order.client_order_id, "status": "closed", "filled": 0.01,
                  "amount": 0.01, "symbol": "BTC/USDT", "price": 49000.0, "side": "buy", "type": "limit"}
        await tr._on_orders([closed])
        assert tr._outbox == []  # filled, says the update; its trades are not here yet
        await tr._on_trades([trade("t1", 0.004)])
        assert tr._outbox == []  # 0.004 of 0.01: still waiting
        await tr._on_trades([trade("t1", 0.004), trade("t2", 0.006)])  # t1 again: counted once
        [report] = tr._outbox
        assert report.status is OrderStatus.FILLED and [f.trade_id for f in report.fills] == [
            "BTC/USDT#t1", "BTC/USDT#t2"]
        await tr._on_trades([trade("t2", 0.006)])  # a repeat reports nothing
        assert len(tr._outbox) == 1
        await engine.tick()
        got = await engine.get_order_by_id(order.id)
        assert got is not None and got.status is OrderStatus.FILLED and got.filled == D("0.01")
        assert got.fee == D("0.49") and (await engine.get_positions())[0].size == D("0.01")


async def test_a_refused_stream_handshake_leaks_no_future_and_still_says_why(streaming: LoopbackBinance, db: Path,
                                                                            caplog: pytest.LogCaptureFixture) -> None:
    # ccxt rejects a future nobody awaits when the handshake fails (binance's subscribe
    # signature): asyncio would log "Future exception was never retrieved" for each attempt
    server, clock = streaming, ManualClock()
    server.streams.refuse = True
    caplog.set_level(logging.DEBUG, logger="core.venues.ccxt_streams")
    async with live(server, db, clock) as engine:
        order = await engine.place_order(limit("49000"))
        await until(engine, lambda: "503" in tracker(engine).streams.errors.get("orders", ""),  # type: ignore[union-attr]
                    "the handshake was refused")
        gc.collect()  # the rejected future is dropped by then: asyncio would have logged it
        assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
        # the error itself is not hidden: the stream is down, polling covers the order, a line says why
        assert tracker(engine).stream_state("orders") == "down"
        down = [r for r in caplog.records if r.name == "core.venues.ccxt_streams" and r.levelno == logging.WARNING]
        assert any("orders" in r.getMessage() and "503" in r.getMessage() for r in down)
        server.fill(server.order_by_client_id(order.client_order_id))  # type: ignore[arg-type]
        clock.advance(1.0)
        await engine.tick()
        assert (await engine.get_order_by_id(order.id)).status is OrderStatus.FILLED  # type: ignore[union-attr]
