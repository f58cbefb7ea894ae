"""Limit-then-market: rest a limit at ``price`` for ``timeout`` seconds; then cancel what is
left of it and take that at market. Paused, its limit is cancelled; resumed before the timeout
it is placed again for what is left, after it the algorithm goes straight to market."""

from __future__ import annotations

from datetime import timedelta

from core.algos_model import LimitThenMarketParams
from core.algos_runner import AlgoRunner
from core.models import OrderType
from core.numbers import clean


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
                    await self.place_child(OrderType.LIMIT, p.remaining, params.price)
                    continue
                await self.wait(seconds)
            await self.cancel_children()
            if p.remaining <= 0:
                return None
            p.phase = "market"
        if p.remaining > 0 and not self.live() and not any(c.type is OrderType.MARKET for c in self.children()):
            await self.place_child(OrderType.MARKET, p.remaining)
        while self.live():
            await self.wait(None)
            await self.sync()
        if p.remaining > 0:
            return f"the market order left {clean(p.remaining)} unfilled"
        return None
