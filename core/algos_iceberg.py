"""Iceberg: one visible child of ``visible`` at ``price`` at a time; when it fills, the next,
until the parent is done. With ``refresh``, a visible child still working after that many
seconds is cancelled and placed again (topped back up to ``visible``). A refresh whose cancel
fails leaves the child working and is tried again one ``refresh`` later, not at once."""

from __future__ import annotations

from datetime import datetime, timedelta

from core.algos_model import IcebergParams
from core.algos_runner import AlgoRunner
from core.models import OrderType
from core.numbers import clean


class Iceberg(AlgoRunner):
    async def run(self) -> str | None:
        p = self.parent
        params = p.params
        assert isinstance(params, IcebergParams)
        retry_at: datetime | None = None  # after a failed refresh cancel: not before this
        while True:
            await self.sync()
            self.check()
            if p.remaining <= 0:
                return None
            live = self.live()
            if not live:
                amount = min(params.visible, self.unplaced())
                if amount < self.market.min_amount:
                    return f"{clean(amount)} left is below the venue's minimum {self.market.min_amount}"
                await self.place_child(OrderType.LIMIT, amount, params.price)
                continue
            timeout = None
            if params.refresh is not None:
                due = live[0].created_at + timedelta(seconds=params.refresh)
                if retry_at is not None and retry_at > due:
                    due = retry_at
                timeout = (due - self.now()).total_seconds()
                if timeout <= 0:
                    await self.cancel_children()
                    if self.live():  # the cancel failed: the child keeps working until the next try
                        retry_at = self.now() + timedelta(seconds=params.refresh)
                    continue
            await self.wait(timeout)
