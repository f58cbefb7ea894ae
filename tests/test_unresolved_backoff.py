"""Lookups of an unresolved order back off on the engine's clock, so a slow or rate-limiting
exchange is not asked four times a second; the order still settles as soon as it is found."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from core import Engine, ManualClock, Order, OrderRequest, OrderStatus
from core.errors import VenueTimeout
from core.lookup_backoff import LookupBackoff
from core.venues.base import VenueReport

TICK = 0.25  # the engine's tick interval


def test_backoff_doubles_up_to_its_cap_per_key() -> None:
    backoff = LookupBackoff(initial=0.5, maximum=10.0)
    looked = [t / 4 for t in range(0, 4 * 60) if backoff.due("a", t / 4)]  # a tick every 0.25 s for a minute
    assert looked[:6] == [0, 0.5, 1.5, 3.5, 7.5, 15.5]
    assert [b - a for a, b in zip(looked[5:], looked[6:])] == [10.0] * (len(looked) - 6)  # capped at 10 s
    assert backoff.due("b", 59.0)  # another order is not held back by the first
    backoff.keep_only(["b"])
    assert backoff.due("a", 59.25)  # forgotten once settled: a new life starts at once
    with pytest.raises(ValueError, match="initial=2, maximum=1"):
        LookupBackoff(initial=2, maximum=1)


async def test_tick_lookups_are_bounded_and_a_found_order_settles_at_once(engine: Engine, clock: ManualClock) -> None:
    venue = engine.venue
    real_submit, real_fetch = venue.submit, venue.fetch_order
    lookups: list[float] = []
    arrived = False

    async def lost_submit(order: Order) -> VenueReport:
        raise VenueTimeout("read timeout")

    async def counting_fetch(order: Order) -> VenueReport | None:
        lookups.append(clock.monotonic())
        return await real_fetch(order) if arrived else None  # not visible at the venue yet

    venue.submit = lost_submit  # type: ignore[method-assign]
    venue.fetch_order = counting_fetch  # type: ignore[method-assign]
    venue.lookup_is_definitive = False  # type: ignore[misc]
    request = OrderRequest(symbol="BTC/USDT", side="buy", type="limit", amount=D("0.01"), price=D("50000"))  # type: ignore[arg-type]
    order = await engine.place_order(request)
    assert order.status is OrderStatus.UNRESOLVED and lookups == [0]  # the submit's own lookup

    for _ in range(int(10 / TICK)):  # ten seconds of ticks
        clock.advance(TICK)
        await engine.tick()
    assert len(lookups) == 6  # not 41: at once, then after 0.5, 1, 2 and 4 s
    assert [b - a for a, b in zip(lookups[1:], lookups[2:])] == [0.5, 1, 2, 4]

    await real_submit(engine._orders[order.id])  # the order shows up at the venue
    arrived = True
    waited = 0.0
    while (await engine.get_order_by_id(order.id)).status is OrderStatus.UNRESOLVED:  # type: ignore[union-attr]
        assert waited < 10, "an unresolved order is looked up at least every 10 s"
        clock.advance(TICK)
        waited += TICK
        await engine.tick()
    assert (await engine.get_order_by_id(order.id)).status is OrderStatus.OPEN  # type: ignore[union-attr]
    assert len(lookups) == 7  # the lookup that found it settled it: no second look
    clock.advance(60)
    await engine.tick()
    assert len(lookups) == 7  # settled orders are not looked up again
