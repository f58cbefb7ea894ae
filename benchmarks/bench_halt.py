"""The halt under load: N open orders on the sim venue -> HALTED, all cancelled, journaled.

Prints JSON for two runs:
- ``halt_ms``: 1,000 open orders over the default symbols, no rate limit (target <= 50 ms);
- ``halt_rate_limited_ms``: the sim venue's rate-limit dial at 10 requests/s and 1,000 orders
  over 5 symbols; per-symbol cancel-all makes it 5 cancel requests + 1 read-back (target
  <= 1 s; one request per order would take 100 s).

    .venv/bin/python benchmarks/bench_halt.py [N]
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import Engine, OrderRequest, Settings, SymbolSpec  # noqa: E402
from core.venues.sim_market import DEFAULT_SPECS  # noqa: E402

FIVE = (*DEFAULT_SPECS,
        SymbolSpec("XRP/USDT", Decimal("0.6"), Decimal("0.0001"), Decimal("1"), depth=Decimal(50_000)),
        SymbolSpec("DOGE/USDT", Decimal("0.15"), Decimal("0.00001"), Decimal("1"), depth=Decimal(200_000)))


async def fill_book(engine: Engine, n: int) -> None:
    symbols = list(engine.venue.markets)
    prices = engine.prices()

    async def place(i: int) -> None:
        sym = symbols[i % len(symbols)]
        m = engine.venue.markets[sym]
        price = (prices[sym] * Decimal("0.97")).quantize(m.tick_size)
        amount = max(m.lot_size, (Decimal(6) / price).quantize(m.lot_size) + m.lot_size)
        o = await engine.place_order(OrderRequest(symbol=sym, side="buy", type="limit", amount=amount, price=price))
        assert o.status.value == "open", o.error

    for start in range(0, n, 100):
        await asyncio.gather(*(place(i) for i in range(start, min(n, start + 100))))


async def run(n: int, symbols: tuple[SymbolSpec, ...], rate_limit: float | None) -> tuple[float, int]:
    settings = Settings(risk={"max_orders_per_second": 1e9})
    with tempfile.TemporaryDirectory() as tmp:
        async with Engine.paper(db=Path(tmp) / "h.sqlite", seed=1, symbols=symbols, balance=Decimal(10_000_000),
                                settings=settings) as engine:
            await fill_book(engine, n)
            engine.venue.dials.rate_limit = rate_limit  # type: ignore[attr-defined]
            t0 = time.perf_counter()
            report = await engine.halt_trading("benchmark")
            elapsed = time.perf_counter() - t0
            assert report.clean, report.summary()
            cancelled = len(report.accounts[0].cancelled)
            assert cancelled == n and not await engine.get_active_orders()
            return elapsed, cancelled


async def main(n: int) -> dict[str, object]:
    fast = min([(await run(n, DEFAULT_SPECS, None))[0] for _ in range(3)])
    limited, _ = await run(n, FIVE, 10.0)
    return {
        "benchmark": "halt",
        "open_orders": n,
        "halt_ms": round(fast * 1000, 1),
        "halt_rate_limited_ms": round(limited * 1000, 1),
        "rate_limit_rps": 10,
        "symbols_rate_limited": 5,
        "target": "halt <= 50 ms; rate-limited over 5 symbols <= 1000 ms",
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))))
