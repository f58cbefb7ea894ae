"""TWAP: the parent split into ``slices`` children, one every ``duration / slices`` seconds.

Each slice takes what is left divided by the slices left, rounded down to the market's lot
(the last slice takes the rest), so a partly filled or skipped slice rolls into the next ones.
Market children take the far touch; limit children rest at the near touch (the best bid for a
buy: maker, no spread paid) and what they leave unfilled is cancelled at the next slice. If
that cancel fails the old child keeps working, so the slice is skipped (and the cancel tried
again at the next one): never more working than the parent has left.

With a ``price_limit``, a slice whose price (the far touch for market children, the near touch
for limit ones) is beyond it is skipped and its amount retried by the next slices; "market"
children are then limit IOC orders at the price limit, so walking the book never pays beyond
it (what the book cannot give within the limit expires and rolls into the next slices). The
last limit children get until the end of the duration; what is still unfilled then is
cancelled and the parent completes with the shortfall named in its reason.

Paused or restarted, the schedule keeps its next due time: a slice that fell due meanwhile is
taken at once, the next ones one interval apart (never a burst of missed slices).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from core.algos_model import TwapParams
from core.algos_runner import AlgoRunner
from core.models import OrderType, TimeInForce
from core.numbers import clean, floor_to_step


class Twap(AlgoRunner):
    async def run(self) -> str | None:
        p = self.parent
        params = p.params
        assert isinstance(params, TwapParams)
        interval = timedelta(seconds=params.duration / params.slices)
        last_skip: str | None = None
        while p.slices_done < params.slices:
            await self.sleep_until(p.next_at)
            await self.cancel_children()  # the last slice's leftover goes into this one
            self.check()
            if p.remaining <= 0:
                break
            left = params.slices - p.slices_done
            due = p.next_at or self.now()
            p.slices_done += 1
            p.next_at = max(due, self.now()) + interval
            unplaced = self.unplaced()
            amount = unplaced if left == 1 else floor_to_step(unplaced / left, self.market.lot_size)
            stuck = self.live()
            if stuck:  # its cancel failed: it still works, so this slice places nothing
                problem: str | None = (f"child {stuck[0].id} is still {stuck[0].status.value} (its cancel failed): "
                                       "no new child until it is gone")
                price: Decimal | None = None
            else:
                problem, price = await self._slice_price(params, amount)
            if problem is not None:
                last_skip = problem
                await self.journal("algo_skipped", {"slice": p.slices_done, "reason": problem})
                continue
            if params.child_type == "limit":
                await self.place_child(OrderType.LIMIT, amount, price)
            elif params.price_limit is not None:  # a market order would walk the book past the limit
                await self.place_child(OrderType.LIMIT, amount, params.price_limit, TimeInForce.IOC)
            else:
                await self.place_child(OrderType.MARKET, amount)
        # The last limit children work until the end of the duration.
        while self.live() and p.next_at is not None:
            seconds = (p.next_at - self.now()).total_seconds()
            if seconds <= 0:
                break
            await self.wait(seconds)
            await self.sync()
        await self.cancel_children()
        if p.remaining > 0:
            return f"duration over with {clean(p.remaining)} unfilled" + (f" (last skip: {last_skip})" if last_skip else "")
        return None

    async def _slice_price(self, params: TwapParams, amount: Decimal) -> tuple[str | None, Decimal | None]:
        """Why this slice cannot go now (or None), and the limit price of a limit child."""
        market = self.market
        if amount <= 0 or amount < market.min_amount:
            return f"slice of {clean(amount)} is below the venue's minimum {market.min_amount}", None
        touch = await self.touch()
        if touch is None:
            return f"no price known for {self.parent.symbol}", None
        price = self.near_touch(*touch) if params.child_type == "limit" else None
        ref = price if price is not None else self.far_touch(*touch)
        if params.price_limit is not None and self.beyond(ref, params.price_limit):
            what = "limit price" if price is not None else "best ask" if self.parent.side.value == "buy" else "best bid"
            return f"{what} {ref} is beyond the price limit {params.price_limit}", None
        return None, price
