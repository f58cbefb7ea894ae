"""Place then cancel N limit orders through the engine on the sim venue, journal on disk.

Prints JSON: orders/s for placing and cancelling, and place -> durable ack latency
percentiles. ``place_order`` returns only after the ack is committed (synchronous=FULL), so its
latency is the durable-ack latency. Clients place concurrently (WORKERS coroutines, each
placing one order at a time), which is what lets the journal group its commits. The timed run
follows a warm-up of 100 orders; the first order after start is reported on its own.

    .venv/bin/python benchmarks/bench_orders.py [N] [WORKERS]
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import Engine, OrderRequest, Settings  # noqa: E402


WARM_UP = 100  # orders placed and cancelled before the timed run


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


async def main(n: int, workers: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        # the throttle would refuse a benchmark's burst: lift it (every other check still runs)
        settings = Settings(risk={"max_orders_per_second": 1e9})
        async with Engine.paper(db=Path(tmp) / "bench.sqlite", seed=1, balance=Decimal(50_000_000),
                                settings=settings) as engine:
            requests = [
                OrderRequest(symbol="BTC/USDT", side="buy", type="limit", amount=Decimal("0.001"),
                             price=Decimal(50_000) + Decimal(i % 500) / 10)
                for i in range(n + 1 + WARM_UP)
            ]
            # The first order builds pydantic's deferred schemas (the console's cold start skips
            # them) and warms the journal's statements: reported, then kept out of the steady state.
            t0 = time.perf_counter()
            first = await engine.place_order(requests.pop())
            first_ms = (time.perf_counter() - t0) * 1000
            for req in requests[-WARM_UP:]:
                await engine.cancel_order((await engine.place_order(req)).id)
            await engine.cancel_order(first.id)
            del requests[-WARM_UP:]
            # Building the requests above leaves a full collection due; it belongs to no order.
            gc.collect()
            n = len(requests)
            latencies: list[float] = []
            ids: list[str] = []

            async def place(chunk: list[OrderRequest]) -> None:
                for req in chunk:
                    t0 = time.perf_counter()
                    order = await engine.place_order(req)
                    latencies.append(time.perf_counter() - t0)
                    assert order.status.value == "open", order.error
                    ids.append(order.id)

            commits0 = engine.journal.commits
            t0 = time.perf_counter()
            await asyncio.gather(*(place(requests[w::workers]) for w in range(workers)))
            place_s = time.perf_counter() - t0
            place_commits = engine.journal.commits - commits0

            cancel_lat: list[float] = []

            async def cancel(chunk: list[str]) -> None:
                for oid in chunk:
                    t1 = time.perf_counter()
                    order = await engine.cancel_order(oid)
                    cancel_lat.append(time.perf_counter() - t1)
                    assert order.status.value == "cancelled", order

            t0 = time.perf_counter()
            await asyncio.gather(*(cancel(ids[w::workers]) for w in range(workers)))
            cancel_s = time.perf_counter() - t0
            assert not await engine.get_active_orders()
    return {
        "benchmark": "orders_place_cancel",
        "orders": n,
        "first_order_ms": round(first_ms, 3),
        "workers": workers,
        "place_orders_per_s": round(n / place_s),
        "place_ack_p50_ms": round(pct(latencies, 50) * 1000, 3),
        "place_ack_p99_ms": round(pct(latencies, 99) * 1000, 3),
        "place_commits": place_commits,
        "cancel_orders_per_s": round(n / cancel_s),
        "cancel_p99_ms": round(pct(cancel_lat, 99) * 1000, 3),
        "target": ">= 20000 orders/s, p99 <= 5 ms",
    }


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    print(json.dumps(asyncio.run(main(n, workers))))
