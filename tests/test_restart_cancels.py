"""Cancels whose end the venue cannot confirm: an acked order the exchange no longer knows at all
(OKX drops cancelled unfilled orders from its lookups after about two hours), at a restart and
at cancel time, and a stop held by the ccxt venue whose cancel was journaled just before a crash."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import ccxt
import pytest

from core import Engine, Order, OrderRequest, OrderStatus
from core.engine import FORGOTTEN_AFTER
from core.events import Notice

from .conftest import on_clock
from .loopback.binance import LoopbackBinance, make_ccxt_binance
from .loopback.common import CcxtRequests
from .loopback.okx import LoopbackOkx, OkxError
from .test_ccxt_stops import ORDER, plain, trigger  # noqa: F401 - plain: a fixture (stops held by CcxtVenue)
from .test_ccxt_stops import live as binance_live
from .test_ccxt_stops import tick as binance_tick
from .test_loopback_okx import BTC, limit
from .test_loopback_okx import live as okx_live
from .test_loopback_okx import tick as okx_tick

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def crash_mid_cancel(engine: Engine, request: OrderRequest, *, reaches_venue: bool,
                           before: Callable[[Order], Awaitable[None] | None] | None = None,
                           started: bool = False) -> Order:
    """Place an order, then crash while its cancel is in flight (journaled as cancelling): the
    venue either took the cancel (its answer lost) or never heard of it. ``before(order)`` runs
    (or is awaited) once the order is placed, before the cancel. ``started``: the engine is
    running already."""
    if not started:
        await engine.start()
    order = await engine.place_order(request)
    assert order.status is OrderStatus.OPEN, order.error
    if before is not None and inspect.isawaitable(done := before(order)):
        await done
    reached, real_cancel = asyncio.Event(), engine.venue.cancel

    async def answer_lost(o: Any) -> Any:
        if reaches_venue:
            await real_cancel(o)
        reached.set()
        await asyncio.Event().wait()

    engine.venue.cancel = answer_lost  # type: ignore[method-assign]
    cancelling = asyncio.ensure_future(engine.cancel_order(order.id))
    await reached.wait()
    await engine.journal.close()  # type: ignore[union-attr]  # a crash: the answer never comes
    cancelling.cancel()
    await engine.venue.close()
    return order


def on_fetch_order(engine: Engine, answer: Callable[..., Awaitable[Any]]) -> None:
    """Once ``engine`` connects, each of its ccxt fetch_order calls is ``answer(real, args, kwargs)``."""
    real_connect = engine.venue.connect

    async def connect() -> None:
        await real_connect()
        ex = engine.venue._ex  # type: ignore[attr-defined]
        real = ex.fetch_order

        async def fetch(*a: Any, **k: Any) -> Any:
            return await answer(real, a, k)

        ex.fetch_order = fetch

    engine.venue.connect = connect  # type: ignore[method-assign]


def forget(okx: LoopbackOkx, order: Order) -> None:
    """OKX drops the order from its lookups (its trades stay readable)."""
    assert order.venue_order_id is not None
    del okx.orders[order.venue_order_id]


def aged(engine: Engine) -> Engine:
    """The engine's clock past FORGOTTEN_AFTER: an order the exchange no longer knows is taken
    as ended only that long after its ack (a young one may be missing from a lookup a moment)."""
    engine.clock.advance(FORGOTTEN_AFTER.total_seconds())  # type: ignore[attr-defined]
    return engine


def said(engine: Engine, *words: str) -> list[str]:
    return [e.text for e in engine.events().drain() if isinstance(e, Notice) and all(w in e.text for w in words)]


def reserved(engine: Engine) -> D:
    """Margin held by open orders: what the account's used margin counts beyond its positions'."""
    return engine.account_status().used_margin - engine.ledger.status().used_margin


@pytest.mark.parametrize("unbooked", [None, "0.004"], ids=["unfilled", "fill-unbooked"])
async def test_a_cancelling_order_the_exchange_no_longer_knows_ends_cancelled_at_restart(
        okx: LoopbackOkx, db: Path, unbooked: str | None) -> None:
    """The cancel reached OKX before the crash; by the restart OKX has forgotten the order. Its
    lookup finding nothing once brought it back open for good: every later cancel failed ("does
    not know the order") and its margin stayed held. It works nowhere: it ends cancelled, with
    any fill the exchange's trades show and the engine never booked, and the desk is told."""

    def match(order: Order) -> None:  # a fill the engine does not hear of before the crash
        if unbooked is not None:
            okx.fill(okx.order_by_client_id(order.client_order_id), unbooked)  # type: ignore[arg-type]

    order = await crash_mid_cancel(okx_live(okx, db), limit("49000"), reaches_venue=True, before=match)
    assert okx.order_by_client_id(order.client_order_id).state == "canceled"  # type: ignore[union-attr]
    forget(okx, order)
    async with aged(okx_live(okx, db)) as again:
        got = await again.get_order_by_id(order.id)
        assert got is not None and got.status is OrderStatus.CANCELLED, (got.status, got.error)
        assert got.filled == D(unbooked or 0)
        assert not await again.get_active_orders()
        assert reserved(again) == 0  # its margin is released
        assert said(again, order.id, "no longer knows", f"{1 if unbooked else 0} fill(s)")
        positions = {p.symbol: p.size for p in await again.get_positions()}
        if unbooked:
            assert D("0.0039") < positions[BTC] <= D(unbooked)  # less the fee taken in BTC
        else:
            assert not positions.get(BTC)
        assert (await again.cancel_order(order.id)).status is OrderStatus.CANCELLED  # final: a no-op


@pytest.mark.parametrize("failing", ["trade/order", "trade/fills"], ids=["lookup", "trades-read"])
async def test_a_cancelling_order_the_venue_could_not_be_asked_about_is_open_again_at_restart(
        okx: LoopbackOkx, db: Path, failing: str) -> None:
    """Not knowing is not "not known": when the lookup, or the read of the forgotten order's
    trades, fails, the order comes back open with the warning, as before."""
    order = await crash_mid_cancel(okx_live(okx, db), limit("49000"), reaches_venue=True)
    forget(okx, order)
    paths = [failing] if failing == "trade/order" else ["trade/fills", "trade/fills-history"]
    kept = {p: okx._routes[("GET", "/api/v5/" + p)] for p in paths}

    def refused(params: Any) -> Any:
        raise OkxError("50012", "Account status invalid")

    for p, (_, auth) in kept.items():
        okx._routes[("GET", "/api/v5/" + p)] = (refused, auth)
    async with aged(okx_live(okx, db)) as again:
        got = await again.get_order_by_id(order.id)
        assert got is not None and got.status is OrderStatus.OPEN, (got.status, got.error)
        assert said(again, order.id, "not confirmed")
        assert reserved(again) == D(490)
        for p, route in kept.items():
            okx._routes[("GET", "/api/v5/" + p)] = route
        # once it can be asked, a cancel ends it (the venue's "does not know" answered by the lookup)
        assert (await again.cancel_order(order.id)).status is OrderStatus.CANCELLED
        assert reserved(again) == 0


async def test_a_cancel_of_an_order_the_exchange_no_longer_knows_ends_it(okx: LoopbackOkx, db: Path) -> None:
    """The same at cancel time: OKX ended the order and forgot it while the engine had it open.
    The cancel ("does not know the order") used to leave it open, failing each time."""
    async with okx_live(okx, db) as engine:
        order = await engine.place_order(limit("49000"))
        at_okx = okx.order_by_client_id(order.client_order_id)
        assert at_okx is not None and order.venue_order_id == at_okx.ord_id
        okx._close(at_okx, "canceled")
        forget(okx, order)
        # a minute after its ack: a lookup may miss a young order for a moment, so it is kept open
        engine.clock.advance(60)  # type: ignore[attr-defined]
        kept = await engine.cancel_order(order.id)
        assert kept.status is OrderStatus.OPEN and reserved(engine) == D(490), (kept.status, kept.error)
        aged(engine)
        cancelled = await engine.cancel_order(order.id)
        assert cancelled.status is OrderStatus.CANCELLED, (cancelled.status, cancelled.error)
        assert not await engine.get_active_orders() and reserved(engine) == 0


async def test_a_halt_ends_an_order_the_exchange_no_longer_knows(okx: LoopbackOkx, db: Path,
                                                                  ccxt_requests: CcxtRequests) -> None:
    """The halt's cancels, one by one on OKX: the lookup after a "does not know" found nothing
    and left the order cancelling, so the halt could never prove the book empty."""
    async with okx_live(okx, db) as engine:
        order = await engine.place_order(limit("49000"))
        at_okx = okx.order_by_client_id(order.client_order_id)
        okx._close(at_okx, "canceled")  # type: ignore[arg-type]
        forget(okx, order)
        aged(engine)
        report = await on_clock(engine.clock, engine.halt_trading("end of day"), engine,  # type: ignore[arg-type]
                                settle=ccxt_requests.settle)
        assert report.clean and report.accounts[0].cancelled == [order.id], report.summary()
        assert (await engine.get_order_by_id(order.id)).status is OrderStatus.CANCELLED  # type: ignore[union-attr]


async def test_a_held_stop_whose_cancel_was_journaled_before_a_crash_is_cancelled_and_never_fires(
        plain: LoopbackBinance, db: Path) -> None:
    """The stop CcxtVenue holds (nothing at the exchange) was being cancelled when the process
    died. It came back open (with the warning) and fired when the price crossed it: the journaled
    cancel is completed where the stop is held."""
    order = await crash_mid_cancel(binance_live(plain, db), trigger("stop", "sell", "49000"), reaches_venue=False)
    assert order.emulated and plain.count(*ORDER) == 0
    async with binance_live(plain, db) as again:
        got = await again.get_order_by_id(order.id)
        assert got is not None and got.status is OrderStatus.CANCELLED, (got.status, got.error)
        assert "journaled before a restart" in (got.error or "")
        assert not await again.get_active_orders()
        plain.set_price("BTCUSDT", "48000")  # through the stop
        for _ in range(3):  # past the two lookups, 2 s apart, that let a restored held stop fire
            await binance_tick(again)
        assert plain.count(*ORDER) == 0 and plain.orders == {}  # never sent
        assert (await again.get_order_by_id(order.id)).status is OrderStatus.CANCELLED  # type: ignore[union-attr]


async def test_a_held_stop_sent_just_before_the_crash_is_followed_at_the_exchange(
        plain: LoopbackBinance, db: Path) -> None:
    """The held stop may have fired and been sent just before the crash, unjournaled: then it is
    not cancelled locally, its lookup by client order id finds it and its fills are booked."""

    async def sent_unjournaled(order: Order) -> None:
        other = make_ccxt_binance(plain)
        try:
            await other.load_markets()
            await other.create_order("BTC/USDT", "market", "sell", 0.01, None, {"clientOrderId": order.client_order_id})
        finally:
            await other.close()

    order = await crash_mid_cancel(binance_live(plain, db), trigger("stop", "sell", "49000"), reaches_venue=False)
    await sent_unjournaled(order)
    async with binance_live(plain, db) as again:
        got = await again.get_order_by_id(order.id)
        assert got is not None and got.status is OrderStatus.FILLED and got.filled == D("0.01"), (got.status, got.error)
        assert plain.count(*ORDER) == 1  # only the send before the crash


async def test_a_held_stop_whose_journaled_cancel_meets_a_failed_request_never_fires(
        plain: LoopbackBinance, db: Path) -> None:
    """The proof the held stop's cancel takes at restart (a lookup by client order id) failed
    (Binance -1000). The cancel was then dropped: the stop came back open and fired when the
    price crossed it. It now stays cancelling (not shown open: it will not fire), and the cancel
    completes at the first poll where the exchange answers."""
    order = await crash_mid_cancel(binance_live(plain, db), trigger("stop", "sell", "49000"), reaches_venue=False)
    again = binance_live(plain, db)
    refusing = {"on": True}

    async def refused(real: Any, a: tuple[Any, ...], k: dict[str, Any]) -> Any:
        if refusing["on"]:
            raise ccxt.ExchangeError('binance {"code":-1000,"msg":"An unknown error occured while processing the request."}')
        return await real(*a, **k)

    on_fetch_order(again, refused)
    async with again:
        waiting = await again.get_order_by_id(order.id)
        assert waiting is not None and waiting.status is OrderStatus.CANCELLING, (waiting.status, waiting.error)
        assert said(again, order.id, "completes the cancel at its next poll")
        plain.set_price("BTCUSDT", "48000")  # through the stop
        await binance_tick(again)  # still refused: nothing fires
        assert plain.count(*ORDER) == 0
        refusing["on"] = False
        for _ in range(2):
            await binance_tick(again)
        got = await again.get_order_by_id(order.id)
        assert got is not None and got.status is OrderStatus.CANCELLED, (got.status, got.error)
        assert plain.count(*ORDER) == 0 and plain.orders == {}  # never sent


async def test_a_fired_held_stop_the_exchange_misses_for_a_moment_is_not_booked_ended(
        plain: LoopbackBinance, db: Path) -> None:
    """A stop held here for 11 minutes fires and is sent; its cancel and lookup then miss it for
    a moment ("unknown order", eventual consistency). Its acked_at is when it was held, so the
    10-minute rule took it for forgotten and booked it cancelled while it worked at the exchange."""
    async with binance_live(plain, db) as engine:
        order = await engine.place_order(trigger("stop_limit", "buy", "51000", "50900"))
        engine.clock.advance(11 * 60)  # type: ignore[attr-defined]
        plain.set_price("BTCUSDT", "51100")
        await binance_tick(engine)  # fires: sent to the exchange as a limit now
        working = await engine.get_order_by_id(order.id)
        assert working is not None and working.status is OrderStatus.TRIGGERED and working.venue_order_id
        ex = engine.venue._ex  # type: ignore[attr-defined]
        real_cancel, real_fetch = ex.cancel_order, ex.fetch_order

        async def cancel_miss(*a: Any, **k: Any) -> Any:
            raise ccxt.OrderNotFound('binance {"code":-2011,"msg":"Unknown order sent."}')

        async def fetch_miss(*a: Any, **k: Any) -> Any:
            raise ccxt.OrderNotFound('binance {"code":-2013,"msg":"Order does not exist."}')

        ex.cancel_order, ex.fetch_order = cancel_miss, fetch_miss
        after = await engine.cancel_order(order.id)
        ex.cancel_order, ex.fetch_order = real_cancel, real_fetch
        assert after.status.is_live, (after.status, after.error)  # kept: it works at the exchange
        assert plain.open_orders()


async def test_a_fired_held_stop_the_exchange_has_forgotten_ends_cancelled_at_restart(okx: LoopbackOkx, db: Path) -> None:
    """OKX holds no stops here: the desk holds them and sends each as it triggers, an ordinary
    order from then on. Counting its age from when it was held (acked_at) booked a young one
    ended; not counting held ones at all brought this one back open for good (cancels failing,
    halts never verified). It counts from when it was sent (sent_at)."""
    engine = okx_live(okx, db)
    sent: list[Order] = []

    async def fire(order: Order) -> None:
        assert order.emulated
        okx.set_price("BTC-USDT", "48900")
        await okx_tick(engine)  # fires: sent to OKX
        fired = await engine.get_order_by_id(order.id)
        assert fired is not None and fired.venue_order_id is not None and fired.sent_at == engine.clock.now()
        sent.append(fired)

    request = OrderRequest(symbol=BTC, side="sell", type="stop_limit", amount=D("0.01"), stop_price=D(49000),
                           price=D(49500))  # type: ignore[arg-type]
    order = await crash_mid_cancel(engine, request, reaches_venue=True, before=fire)
    forget(okx, sent[0])
    again = okx_live(okx, db)
    again.clock.advance(60 + FORGOTTEN_AFTER.total_seconds())  # type: ignore[attr-defined]  # sent a minute in
    async with again:
        got = await again.get_order_by_id(order.id)
        assert got is not None and got.status is OrderStatus.CANCELLED, (got.status, got.error)
        assert not await again.get_active_orders()


async def test_a_bug_completing_a_journaled_cancel_loses_no_fill_of_the_same_poll(plain: LoopbackBinance, db: Path) -> None:
    """The held stop's journaled cancel is retried at every poll. An error that is not the
    venue's (here an answer ccxt cannot parse) escaped the poll after the tracker had handed
    over the fills it read: a limit that filled in that poll stayed open with nothing filled."""
    engine = binance_live(plain, db)
    await engine.start()
    buy = await engine.place_order(OrderRequest(symbol="BTC/USDT", side="buy", type="limit", amount=D("0.01"),
                                                price=D(49000)))  # type: ignore[arg-type]
    stop = await crash_mid_cancel(engine, trigger("stop", "sell", "48000"), reaches_venue=False, started=True)
    again = binance_live(plain, db)
    lookup = {"fails": "venue"}  # at the restart the exchange refuses: the cancel stays to complete

    async def fetch(real: Any, a: tuple[Any, ...], k: dict[str, Any]) -> Any:
        params = a[2] if len(a) > 2 else k.get("params") or {}
        if params.get("clientOrderId") == stop.client_order_id and lookup["fails"] == "venue":
            raise ccxt.ExchangeError('binance {"code":-1000,"msg":"An unknown error occured."}')
        if params.get("clientOrderId") == stop.client_order_id and lookup["fails"] == "bug":
            raise TypeError("'NoneType' object is not subscriptable")
        return await real(*a, **k)

    on_fetch_order(again, fetch)
    async with again:
        lookup["fails"] = "bug"
        plain.set_price("BTCUSDT", "48900")  # the resting buy at 49000 fills
        await binance_tick(again)
        got = await again.get_order_by_id(buy.id)
        assert got is not None and got.status is OrderStatus.FILLED and got.filled == D("0.01")
        lookup["fails"] = ""
        await binance_tick(again)
        ended = await again.get_order_by_id(stop.id)
        assert ended is not None and ended.status is OrderStatus.CANCELLED, (ended.status, ended.error)
        assert plain.count(*ORDER) == 1  # the buy only: the stop never fired


async def test_a_poll_that_fails_after_reading_fills_hands_them_over_at_the_next(plain: LoopbackBinance, db: Path) -> None:
    async with binance_live(plain, db) as engine:
        buy = await engine.place_order(OrderRequest(symbol="BTC/USDT", side="buy", type="limit", amount=D("0.01"),
                                                    price=D(49000)))  # type: ignore[arg-type]
        await engine.place_order(trigger("stop", "sell", "48950"))
        real_send = engine.venue._send  # type: ignore[attr-defined]

        async def broken_send(*a: Any, **k: Any) -> Any:
            raise TypeError("a bug while sending the triggered stop")

        engine.venue._send = broken_send  # type: ignore[attr-defined]
        plain.set_price("BTCUSDT", "48900")  # the buy fills and the stop triggers in the same poll
        with pytest.raises(TypeError):
            await binance_tick(engine)
        engine.venue._send = real_send  # type: ignore[attr-defined]
        await binance_tick(engine)
        got = await engine.get_order_by_id(buy.id)
        assert got is not None and got.status is OrderStatus.FILLED and got.filled == D("0.01")
