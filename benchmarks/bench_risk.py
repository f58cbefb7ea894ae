"""Cost of one full pre-trade risk check on the sim venue (every rule evaluated, order passes).

Prints JSON: microseconds per check for RiskEngine.check alone and with building its context
from the engine's live state (what place_order pays). Target: <= 5 us.

    .venv/bin/python benchmarks/bench_risk.py [N]
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

from core import Engine, Order, OrderRequest, Settings  # noqa: E402


async def main(n: int) -> dict[str, object]:
    settings = Settings(risk={"max_orders_per_second": 1e12})
    with tempfile.TemporaryDirectory() as tmp:
        async with Engine.paper(db=Path(tmp) / "b.sqlite", seed=1, settings=settings) as engine:
            await engine.place_market_order("BTC/USDT", "buy", Decimal("0.5"))  # a position to check against
            req = OrderRequest(symbol="BTC/USDT", side="buy", type="limit", amount=Decimal("0.01"), price=Decimal("50500"))
            order = Order.from_request(req, id="bench", account="paper", now=engine.clock.now())
            acct = engine._accounts["paper"]
            ctx = engine._risk_context(acct, order, False)
            assert acct.risk.check(order, ctx) == [], acct.risk.check(order, ctx)
            check = acct.risk.check
            best_check = best_full = float("inf")
            for _ in range(5):
                t0 = time.perf_counter()
                for _ in range(n):
                    check(order, ctx)
                best_check = min(best_check, (time.perf_counter() - t0) / n)
                t0 = time.perf_counter()
                for _ in range(n):
                    check(order, engine._risk_context(acct, order, False))
                best_full = min(best_full, (time.perf_counter() - t0) / n)
    return {
        "benchmark": "risk_check",
        "checks": n,
        "check_us": round(best_check * 1e6, 2),
        "check_with_context_us": round(best_full * 1e6, 2),
        "target": "<= 5 us",
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000))))
