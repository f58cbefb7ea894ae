"""Limit-then-market: rest a limit at ``price`` for ``timeout`` seconds; then cancel what is
left of it and take that at market. Paused, its limit is cancelled; resumed before the timeout
it is placed again for what is left, after it the algorithm goes straight to market. If the
limit's cancel fails it keeps working: the market order waits until it is gone (the cancel is
tried again every ``CANCEL_RETRY`` seconds), so the two never work at once."""

from __future__ import annotations

from datetime import timedelta

from core.algos_model import LimitThenMarketParams
from core.algos_runner import AlgoRunner
from core.models import OrderType
from core.numbers import clean

CANCEL_RETRY = 5.0  # seconds on the engine clock between tries to cancel a limit that would not go


class LimitThenMarket(AlgoRunner):
    async def run(self) -> str | None:
        p = self.parent
        params = p.params
        assert isinstance(params, LimitThenMarketParams)
        if p.phase is None:
            p.phase = "limit"
            p.next_at = self.now() + timedelta(seconds=params.timeout)
        if p.phase == "limit":
            while True:
                await self.sync()
                self.check()
                if p.remaining <= 0:
                    return None
                assert p.next_at is not None
                seconds = (p.next_at - self.now()).total_seconds()
                if seconds <= 0:
                    break
                if not self.live():
                    await self.place_child(OrderType.LIMIT, self.unplaced(), params.price)
                    continue
                await self.wait(seconds)
            p.phase = "market"
        while p.remaining > 0 and not any(c.type is OrderType.MARKET for c in self.children()):
            await self.cancel_children()
            self.check()
            if p.remaining <= 0:
                return None
            if not self.live():
                await self.place_child(OrderType.MARKET, self.unplaced())
                break
            retry_at = self.now() + timedelta(seconds=CANCEL_RETRY)
            while self.live() and self.now() < retry_at:  # the limit still works: it may fill meanwhile
                await self.wait((retry_at - self.now()).total_seconds())
                await self.sync()
        while self.live():
            await self.wait(None)
            await self.sync()
        if p.remaining > 0:
            return f"the market order left {clean(p.remaining)} unfilled"
        return None
