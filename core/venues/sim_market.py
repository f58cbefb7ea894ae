"""A seeded price source with a synthetic order book, for paper trading with no network.

Prices move in whole ticks (a seeded Gaussian number of ticks per step), so every price is an
exact Decimal and a given seed always produces the same path. Tests can also script the next
prices of a symbol. The book is a deterministic function of the last price: a spread around
it and levels whose size grows with distance, so a larger market order walks further and pays
more slippage.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from core.models import Market
from core.numbers import floor_to_step, round_to_step


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    symbol: str
    start: Decimal
    tick: Decimal
    lot: Decimal
    min_notional: Decimal = Decimal(5)
    volatility: float = 0.0005  # standard deviation of one step, as a fraction of price
    half_spread_ticks: int = 1
    level_gap_ticks: int = 1
    depth: Decimal = Decimal(1)  # base amount at the best level; level i holds depth * (i + 1)
    levels: int = 25
    max_leverage: Decimal = Decimal(20)

    def market(self) -> Market:
        base, quote = self.symbol.split("/")
        # model_construct: the spec's Decimals need no checking, and validating would build
        # Market's validator during the console's start (the first build in a process, ~15 ms)
        return Market.model_construct(
            symbol=self.symbol,
            base=base,
            quote=quote,
            tick_size=self.tick,
            lot_size=self.lot,
            min_amount=self.lot,
            min_notional=self.min_notional,
            max_leverage=self.max_leverage,
        )


DEFAULT_SPECS: tuple[SymbolSpec, ...] = (
    SymbolSpec(
        "BTC/USDT", Decimal("51000"), Decimal("0.1"), Decimal("0.0001"),
        volatility=0.0004, half_spread_ticks=1, level_gap_ticks=5, depth=Decimal("0.25"),
    ),
    SymbolSpec(
        "ETH/USDT", Decimal("3200"), Decimal("0.01"), Decimal("0.001"),
        volatility=0.0005, half_spread_ticks=1, level_gap_ticks=10, depth=Decimal("3"),
    ),
    SymbolSpec(
        "SOL/USDT", Decimal("150"), Decimal("0.01"), Decimal("0.01"),
        volatility=0.0007, half_spread_ticks=1, level_gap_ticks=2, depth=Decimal("60"),
    ),
)


class SimMarket:
    def __init__(self, seed: int = 7, specs: Iterable[SymbolSpec] = DEFAULT_SPECS) -> None:
        self.seed = seed
        self.specs = {s.symbol: s for s in specs}
        self._rng = {sym: random.Random(f"{seed}:{sym}") for sym in self.specs}
        self.last = {sym: s.start for sym, s in self.specs.items()}
        self._script: dict[str, deque[Decimal]] = {}
        self.steps = 0

    @property
    def markets(self) -> dict[str, Market]:
        return {sym: s.market() for sym, s in self.specs.items()}

    def script(self, symbol: str, prices: Iterable[Decimal | str | int]) -> None:
        """Make the next steps of ``symbol`` take these prices instead of random ones."""
        self._script.setdefault(symbol, deque()).extend(Decimal(str(p)) for p in prices)

    def set_price(self, symbol: str, price: Decimal) -> None:
        spec = self.specs[symbol]
        self.last[symbol] = max(round_to_step(price, spec.tick), spec.tick)

    def step(self) -> dict[str, Decimal]:
        self.steps += 1
        for sym, spec in self.specs.items():
            scripted = self._script.get(sym)
            if scripted:
                self.set_price(sym, scripted.popleft())
                continue
            last = self.last[sym]
            sigma_ticks = spec.volatility * float(last / spec.tick)
            moved = round(self._rng[sym].gauss(0.0, sigma_ticks))
            self.last[sym] = max(last + moved * spec.tick, spec.tick)
        return dict(self.last)

    def best(self, symbol: str) -> tuple[Decimal, Decimal]:
        spec = self.specs[symbol]
        half = spec.half_spread_ticks * spec.tick
        last = self.last[symbol]
        return max(last - half, spec.tick), last + half

    def levels(self, symbol: str, book_side: str) -> Iterable[tuple[Decimal, Decimal]]:
        """Yield (price, amount) from the best level outwards; book_side is 'ask' or 'bid'."""
        spec = self.specs[symbol]
        bid, ask = self.best(symbol)
        gap = spec.level_gap_ticks * spec.tick
        for i in range(spec.levels):
            size = floor_to_step(spec.depth * (i + 1), spec.lot)
            if book_side == "ask":
                yield ask + gap * i, size
            else:
                price = bid - gap * i
                if price <= 0:
                    return
                yield price, size
