"""The simulated venue on its own: exact fills from the seeded book (hand-computed below).

BTC/USDT book at last 51000: tick 0.1, one tick each side -> bid 50999.9 / ask 51000.1;
levels every 5 ticks (0.5) holding 0.25 * (level + 1): asks 51000.1 x 0.25, 51000.6 x 0.5,
51001.1 x 0.75 ...; bids 50999.9 x 0.25, 50999.4 x 0.5, ...
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from core import ManualClock, Order, OrderRequest, OrderStatus
from core.errors import OrderNotFound, OrderRejected, VenueTimeout
from core.models import Liquidity
from core.venues.sim import SimDials, SimVenue
from core.venues.sim_market import SimMarket

T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
_n = 0


def order(**kw: object) -> Order:
    global _n
    _n += 1
    kw.setdefault("symbol", "BTC/USDT")
    kw.setdefault("side", "buy")
    kw.setdefault("type", "limit" if "price" in kw else "market")
    req = OrderRequest(**kw)  # type: ignore[arg-type]
    return Order.from_request(req, id=f"t{_n}", account="paper", now=T0)


@pytest.fixture
def venue() -> SimVenue:
    return SimVenue(SimMarket(7), clock=ManualClock(), balance=D(1_000_000), seed=7)


async def test_market_order_walks_the_book_with_exact_fills_and_taker_fees(venue: SimVenue) -> None:
    r = await venue.submit(order(amount=D("0.5")))
    assert r.status is OrderStatus.FILLED
    assert [(f.amount, f.price) for f in r.fills] == [(D("0.25"), D("51000.1")), (D("0.25"), D("51000.6"))]
    # 0.0004 * (0.25 * 51000.1 + 0.25 * 51000.6) = 0.0004 * 25500.175 = 10.20007
    assert sum(f.fee for f in r.fills) == D("10.20007")
    assert all(f.liquidity is Liquidity.TAKER for f in r.fills)


async def test_slippage_grows_with_size(venue: SimVenue) -> None:
    small = await venue.submit(order(amount=D("0.25")))
    venue.market.step()  # fresh book (consumed liquidity resets each step)
    venue.market.set_price("BTC/USDT", D(51000))
    venue._consumed.clear()
    big = await venue.submit(order(amount=D("3")))

    def avg(r):  # noqa: ANN001, ANN202
        return sum(f.amount * f.price for f in r.fills) / sum(f.amount for f in r.fills)

    assert avg(small) == D("51000.1")
    assert avg(big) > avg(small) + D("1")


async def test_liquidity_taken_is_gone_until_the_next_step(venue: SimVenue) -> None:
    await venue.submit(order(amount=D("0.25")))
    r = await venue.submit(order(amount=D("0.25")))
    assert [f.price for f in r.fills] == [D("51000.6")]  # level 0 already consumed this step


async def test_resting_limit_fills_partially_at_its_own_price_with_maker_fee(venue: SimVenue) -> None:
    o = order(amount=D("0.6"), price=D("50990"))
    r = await venue.submit(o)
    assert r.status is OrderStatus.OPEN and not r.fills
    # last 50989.9 -> ask 50990.0: only level 0 (0.25) is at or under the limit
    venue.market.script("BTC/USDT", ["50989.9", "50989.9", "50989.9"])
    u = await venue.poll()
    assert [(x.status, x.filled) for x in u.reports] == [(OrderStatus.PARTIALLY_FILLED, D("0.25"))]
    f = u.reports[0].fills[0]
    assert (f.price, f.liquidity, f.fee) == (D("50990"), Liquidity.MAKER, D("0.25") * D("50990") * D("0.0002"))
    await venue.poll()
    u = await venue.poll()
    assert u.reports[0].status is OrderStatus.FILLED and u.reports[0].filled == D("0.6")
    assert [x.amount for x in u.reports[0].fills] == [D("0.25"), D("0.25"), D("0.1")]


async def test_limit_does_not_fill_until_crossed(venue: SimVenue) -> None:
    await venue.submit(order(amount=D("0.1"), price=D("50000")))
    venue.market.script("BTC/USDT", ["50500", "50100.1"])
    assert (await venue.poll()).reports == []
    assert (await venue.poll()).reports == []  # ask 50100.2 still above 50000


async def test_stop_triggers_on_last_price_and_executes_at_market(venue: SimVenue) -> None:
    await venue.submit(order(amount=D("1")))  # long 1 to protect
    stop = order(side="sell", type="stop", amount=D("0.25"), stop_price=D("50900"), reduce_only=True)
    assert (await venue.submit(stop)).status is OrderStatus.OPEN
    venue.market.script("BTC/USDT", ["50950", "50900"])
    assert (await venue.poll()).reports == []
    r = (await venue.poll()).reports[0]
    assert r.status is OrderStatus.FILLED
    assert [(f.amount, f.price) for f in r.fills] == [(D("0.25"), D("50899.9"))]


async def test_stop_limit_becomes_a_resting_limit_after_the_trigger(venue: SimVenue) -> None:
    o = order(type="stop_limit", amount=D("0.1"), stop_price=D("51100"), price=D("51050"))
    await venue.submit(o)
    venue.market.script("BTC/USDT", ["51100", "51040"])
    r = (await venue.poll()).reports[0]
    assert r.status is OrderStatus.TRIGGERED and r.filled == 0  # ask 51100.1 above the limit
    r = (await venue.poll()).reports[0]
    assert r.status is OrderStatus.FILLED and r.fills[0].price == D("51050")


async def test_take_profit_triggers_when_price_moves_in_favour(venue: SimVenue) -> None:
    await venue.submit(order(amount=D("0.5")))
    tp = order(side="sell", type="take_profit", amount=D("0.5"), stop_price=D("51200"), reduce_only=True)
    await venue.submit(tp)
    venue.market.script("BTC/USDT", ["51150", "51200"])
    assert (await venue.poll()).reports == []
    r = (await venue.poll()).reports[0]
    assert r.status is OrderStatus.FILLED and r.fills[0].price == D("51199.9")


async def test_trigger_that_would_fire_at_once_is_refused(venue: SimVenue) -> None:
    with pytest.raises(OrderRejected, match="would trigger immediately"):
        await venue.submit(order(type="stop", amount=D("0.1"), stop_price=D("50000")))


async def test_ioc_fills_what_it_can_and_expires_the_rest(venue: SimVenue) -> None:
    r = await venue.submit(order(amount=D("1"), price=D("51000.6"), time_in_force="IOC"))
    assert r.status is OrderStatus.EXPIRED and r.filled == D("0.75")


async def test_fok_fills_all_or_nothing(venue: SimVenue) -> None:
    r = await venue.submit(order(amount=D("1"), price=D("51000.6"), time_in_force="FOK"))
    assert r.status is OrderStatus.EXPIRED and r.filled == 0 and not r.fills
    r = await venue.submit(order(amount=D("0.75"), price=D("51000.6"), time_in_force="FOK"))
    assert r.status is OrderStatus.FILLED and r.filled == D("0.75")


async def test_post_only_is_refused_if_it_would_cross(venue: SimVenue) -> None:
    with pytest.raises(OrderRejected, match="post-only order would take liquidity"):
        await venue.submit(order(amount=D("0.1"), price=D("51000.1"), time_in_force="PO"))
    r = await venue.submit(order(amount=D("0.1"), price=D("50999.9"), time_in_force="PO"))
    assert r.status is OrderStatus.OPEN


async def test_reduce_only_is_refused_when_it_would_increase_and_clamped_to_the_position(venue: SimVenue) -> None:
    with pytest.raises(OrderRejected, match="no BTC/USDT position to reduce"):
        await venue.submit(order(side="sell", amount=D("0.1"), reduce_only=True))
    await venue.submit(order(amount=D("0.2")))
    with pytest.raises(OrderRejected, match="would increase the long"):
        await venue.submit(order(amount=D("0.1"), reduce_only=True))
    r = await venue.submit(order(side="sell", amount=D("0.5"), reduce_only=True))
    assert r.filled == D("0.2") and r.status is OrderStatus.CANCELLED
    assert "no position left" in (r.error or "")
    assert venue.ledger.signed_size("BTC/USDT") == 0


async def test_market_rules_are_checked_with_every_problem_named(venue: SimVenue) -> None:
    with pytest.raises(OrderRejected) as err:
        await venue.submit(order(amount=D("0.00005"), price=D("51000.05")))
    msg = str(err.value)
    assert "finer than the lot size 0.0001" in msg
    assert "price 51000.05 is finer than the tick size 0.1" in msg
    assert "below the minimum" in msg
    with pytest.raises(OrderRejected, match="unknown symbol DOGE/USDT"):
        await venue.submit(order(symbol="DOGE/USDT", amount=D("1")))


async def test_margin_is_checked_and_leverage_raises_buying_power() -> None:
    venue = SimVenue(SimMarket(7), clock=ManualClock(), balance=D(10_000))
    with pytest.raises(OrderRejected, match="insufficient margin"):
        await venue.submit(order(amount=D("0.2")))  # 10,200 USDT at 1x
    r = await venue.submit(order(amount=D("0.2"), leverage=D(5)))  # 2,040 USDT margin at 5x
    assert r.status is OrderStatus.FILLED


async def test_resting_orders_hold_margin_until_cancelled() -> None:
    venue = SimVenue(SimMarket(7), clock=ManualClock(), balance=D(10_000))
    o = order(amount=D("0.2"), price=D("46000"))  # holds 9,200
    await venue.submit(o)
    with pytest.raises(OrderRejected, match="insufficient margin"):
        await venue.submit(order(amount=D("0.03"), price=D("46000")))  # needs 1,380, 800 free
    await venue.cancel(o)
    assert venue.reserved_margin == 0
    assert (await venue.submit(order(amount=D("0.03"), price=D("46000")))).status is OrderStatus.OPEN


async def test_fees_are_configurable() -> None:
    venue = SimVenue(SimMarket(7), clock=ManualClock(), balance=D(1_000_000), taker_fee=D("0.001"))
    r = await venue.submit(order(amount=D("0.25")))
    assert r.fills[0].fee == D("0.25") * D("51000.1") * D("0.001")


async def test_cancel_amend_and_lookup(venue: SimVenue) -> None:
    o = order(amount=D("0.1"), price=D("50000"))
    await venue.submit(o)
    r = await venue.amend(o, D("50100"), D("0.2"))
    assert (r.price, r.amount, r.status) == (D("50100"), D("0.2"), OrderStatus.OPEN)
    with pytest.raises(OrderRejected, match="finer than the tick size"):
        await venue.amend(o, D("50100.05"), None)
    assert [x.client_order_id for x in await venue.fetch_open_orders()] == [o.client_order_id]
    assert (await venue.cancel(o)).status is OrderStatus.CANCELLED
    assert (await venue.fetch_order(o)).status is OrderStatus.CANCELLED  # type: ignore[union-attr]
    assert await venue.fetch_open_orders() == []
    with pytest.raises(OrderNotFound):
        await venue.cancel(order(amount=D("0.1"), price=D("50000")))


async def test_cancel_all_per_symbol_is_one_request(venue: SimVenue) -> None:
    for p in ("50000", "50100", "50200"):
        await venue.submit(order(amount=D("0.01"), price=D(p)))
    await venue.submit(order(symbol="ETH/USDT", amount=D("0.1"), price=D("3000")))
    before = venue.requests
    reports = await venue.cancel_all("BTC/USDT")
    assert venue.requests == before + 1
    assert {r.status for r in reports} == {OrderStatus.CANCELLED} and len(reports) == 3
    assert [r.client_order_id for r in await venue.fetch_open_orders()] != []


async def test_dials_reject_and_lost_answer() -> None:
    clock = ManualClock()
    v = SimVenue(SimMarket(7), clock=clock, balance=D(1_000_000), dials=SimDials(reject_rate=1.0))
    with pytest.raises(OrderRejected, match="reject_rate"):
        await v.submit(order(amount=D("0.01"), price=D("50000")))
    v = SimVenue(SimMarket(7), clock=clock, balance=D(1_000_000), dials=SimDials(timeout_after_accept_rate=1.0))
    o = order(amount=D("0.01"), price=D("50000"))
    with pytest.raises(VenueTimeout):
        await v.submit(o)
    found = await v.fetch_order(o)
    assert found is not None and found.status is OrderStatus.OPEN  # accepted despite the lost answer


async def test_latency_and_rate_limit_wait_on_the_clock() -> None:
    clock = ManualClock()
    v = SimVenue(SimMarket(7), clock=clock, balance=D(1_000_000), dials=SimDials(latency=0.5, rate_limit=2))
    task = asyncio.create_task(v.fetch_open_orders())
    await asyncio.sleep(0)
    assert not task.done()
    clock.advance(0.5)
    assert await task == []
    # second request: the rate limit (2/s) spaces it 0.5 s after the first, then latency 0.5 s
    task = asyncio.create_task(v.fetch_open_orders())
    await asyncio.sleep(0)
    clock.advance(0.4)
    await asyncio.sleep(0)
    assert not task.done()
    clock.advance(0.1)
    await asyncio.sleep(0)
    clock.advance(0.5)
    assert await task == []


def test_market_is_deterministic_per_seed() -> None:
    a, b, c = SimMarket(3), SimMarket(3), SimMarket(4)
    path_a = [a.step()["BTC/USDT"] for _ in range(50)]
    path_b = [b.step()["BTC/USDT"] for _ in range(50)]
    path_c = [c.step()["BTC/USDT"] for _ in range(50)]
    assert path_a == path_b != path_c
    assert all(p % D("0.1") == 0 for p in path_a)  # always on the tick grid
    assert len(set(path_a)) > 10  # and it moves
