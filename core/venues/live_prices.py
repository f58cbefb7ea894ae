"""Paper trading on live prices: the simulated venue's market, fed by an exchange's public data.

Markets (tick, lot, minimum notional) and last/bid/ask come from ccxt's public endpoints, no
keys; fills are simulated by ``SimVenue`` on those prices with a synthetic book around them.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from core.numbers import floor_to_step, round_to_step, to_decimal
from core.venues.sim_market import SimMarket, SymbolSpec

PREFERRED = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
LEVEL_NOTIONAL = Decimal(25_000)  # depth of the synthetic book's first level, in the quote currency


class LivePriceMarket(SimMarket):
    def __init__(self, exchange_id: str, *, symbols: Sequence[str] | None = None, api_url: str | None = None,
                 options: dict[str, Any] | None = None, timeout_ms: int = 10_000) -> None:
        super().__init__(seed=0, specs=())
        self.exchange_id = exchange_id
        self._wanted = list(symbols or PREFERRED)
        self._api_url = api_url
        self._options = options or {}
        self._timeout_ms = timeout_ms
        self._ex: Any = None
        self._spread: dict[str, Decimal] = {}

    async def connect(self) -> None:
        from core.venues.ccxt_venue import exchange_class, point_at, precision_step

        ex = exchange_class(self.exchange_id)({"enableRateLimit": True, "timeout": self._timeout_ms,
                                               "options": dict(self._options)})
        if self._api_url:
            point_at(ex, self._api_url)
        self._ex = ex
        await ex.load_markets()
        symbols = [s for s in self._wanted if s in ex.markets] or sorted(ex.markets)[:3]

        for sym in symbols:
            m = ex.markets[sym]
            precision = m.get("precision") or {}
            tick, lot = precision_step(ex, precision.get("price")), precision_step(ex, precision.get("amount"))
            t = await ex.fetch_ticker(sym)
            if t.get("last") is None:
                continue  # no trade yet: not a market to paper-trade
            last = round_to_step(to_decimal(t["last"]), tick)
            min_cost = ((m.get("limits") or {}).get("cost") or {}).get("min")
            self.specs[sym] = SymbolSpec(
                sym, last, tick, lot, min_notional=to_decimal(min_cost) if min_cost else Decimal(5),
                volatility=0.0, half_spread_ticks=1, level_gap_ticks=1,
                depth=max(lot, floor_to_step(LEVEL_NOTIONAL / last, lot)),
            )
            self.last[sym] = last

    async def refresh(self) -> None:
        import ccxt.async_support as ccxt_async

        for sym in self.specs:
            try:
                t = await self._ex.fetch_ticker(sym)
            except ccxt_async.BaseError:
                continue  # keep the last price for a tick; the next refresh tries again
            if t.get("last") is not None:
                self.set_price(sym, to_decimal(t["last"]))

    def step(self) -> dict[str, Decimal]:
        self.steps += 1  # prices moved in refresh(); nothing random here
        return dict(self.last)

    async def close(self) -> None:
        if self._ex is not None:
            await self._ex.close()
