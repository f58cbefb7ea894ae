"""The console under load, headless.

Prints JSON:
- ``cold_start_ms``: a fresh process running the ``tradedesk`` command (``console.cli.main``:
  arguments, settings, imports, journal open, first compose) until the first interactive screen:
  Textual's Ready, sent once the screen is built and its first frame written. That frame is the
  whole screen (the journal restored, every pane, the event log's lines, the footer's keys).
  Best and median of 9 (target <= 300 ms).
- ``cold_start_settled_ms``: until the frame after it. Textual lays the screen out once more
  after the first frame (every widget's virtual size changed), on its 60 Hz timer: that frame
  adds the scrollbars the first layout found were needed (here the order entry's and the event
  log's sideways one) and nothing else.
- ``keypress_to_visible_ms``: with N tracked orders and ~1,000 order updates/s flowing from the
  sim venue, the time from pressing Enter in the order entry to the new order's row being
  painted in the orders pane, p50/p99 over R orders (target p99 <= 100 ms).

    .venv/bin/python benchmarks/bench_console.py [N] [R]
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_STARTUP = r"""
import sys, time
t0 = float(sys.argv[1])
import console.cli  # the `tradedesk` script's entry point
import console.app

class Probe(console.app.TradedeskApp):
    def run(self, **kwargs):  # the app the command builds, headless and without the market loop
        self.run_loops = False
        return super().run(headless=True)
    def on_ready(self):  # the first frame is written. TradedeskApp.on_ready runs too (after this)
        print(round((time.time() - t0) * 1000, 1), flush=True)
        self.call_after_refresh(self._settled)
    def _settled(self):
        print(round((time.time() - t0) * 1000, 1), flush=True)
        self.exit()

console.app.TradedeskApp = Probe  # the command imports it when it runs
console.cli.main(["--db", sys.argv[2]])
"""


def cold_start() -> tuple[float, float, float, float]:
    """A new process each time, as a trader starting the console. Bytecode caching is on, as
    in a normal install (this sandbox sets PYTHONDONTWRITEBYTECODE; a first, discarded run
    writes the caches, into a user cache folder of its own: a developer's may hold the style
    sheets of other checkouts too, which one install's never does). No config file and no
    TRADEDESK_* variables: the defaults. The output is a pipe, so the terminal size comes from
    COLUMNS/LINES: without them Rich assumes 80x25 and the headless driver 80x24, and the resize
    between the two relaid and repainted every widget (~18 ms), which a real terminal, reporting
    one size to both, never does."""
    env = {k: v for k, v in os.environ.items()
           if k != "PYTHONDONTWRITEBYTECODE" and not k.upper().startswith("TRADEDESK_")}
    env.update(PYTHONPATH=str(ROOT), COLUMNS="80", LINES="24")
    first, settled = [], []
    with tempfile.TemporaryDirectory() as tmp:
        env["XDG_CACHE_HOME"] = str(Path(tmp) / "cache")
        for i in range(10):
            db = str(Path(tmp) / f"s{i}.sqlite")
            out = subprocess.run([sys.executable, "-c", _STARTUP, repr(time.time()), db], cwd=ROOT,
                                 capture_output=True, text=True, check=True, env=env)
            if i:
                a, b = startup_figures(out.stdout)
                first.append(a)
                settled.append(b)
    return min(first), statistics.median(first), min(settled), statistics.median(settled)


def startup_figures(stdout: str) -> tuple[float, float]:
    """The first frame's and the settled screen's times, in ms, from _STARTUP's output."""
    first, settled = (float(line) for line in stdout.strip().splitlines()[-2:])
    return first, settled


async def keypress_latency(n: int, rounds: int) -> dict[str, float]:
    from console.app import TradedeskApp
    from core import Engine, OrderRequest, Settings
    from widgets.order_entry import OrderEntry
    from widgets.orders_view import OrdersView

    painted: dict[str, float] = {}
    original = OrdersView.render_line

    def render_line(self, y):  # noqa: ANN001, ANN202 - records when each order is first painted
        strip = original(self, y)
        index = int(self.scroll_offset.y) + y
        if index < len(self._rows):
            painted.setdefault(self._rows[index], time.perf_counter())
        return strip

    OrdersView.render_line = render_line  # type: ignore[method-assign]
    settings = Settings(risk={"max_orders_per_second": 1e9, "max_position_notional": 1e12, "max_exposure_pct": 1e9})
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine.paper(db=Path(tmp) / "c.sqlite", seed=3, balance=Decimal(10**9), settings=settings)
        app = TradedeskApp(engine, run_loops=False)
        async with app.run_test(size=(160, 45)) as pilot:
            await pilot.pause()
            ids: list[str] = []

            async def place(i: int) -> None:
                o = await engine.place_order(OrderRequest(symbol="BTC/USDT", side="buy", type="limit",
                                                          amount=Decimal("0.001"), price=Decimal(49000) + i % 900))
                ids.append(o.id)

            for start in range(0, n, 200):
                await asyncio.gather(*(place(i) for i in range(start, min(n, start + 200))))
            await pilot.pause()
            stop = asyncio.Event()
            updates = 0

            async def churn() -> None:  # ~1,000 order updates/s: amend prices of resting orders
                nonlocal updates
                rng = random.Random(1)
                while not stop.is_set():
                    t = time.perf_counter()
                    batch = [engine.modify_order(rng.choice(ids), price=Decimal(49000) + rng.randrange(900)) for _ in range(50)]
                    await asyncio.gather(*batch)
                    updates += len(batch)
                    await asyncio.sleep(max(0.0, 0.05 - (time.perf_counter() - t)))

            churner = asyncio.create_task(churn())
            entry = app.q(OrderEntry)
            entry.set_value("amount", "0.001")
            latencies = []
            warmup = 5  # first-use costs (code paths, caches) are not the steady state measured
            t_start = time.perf_counter()
            for r in range(rounds + warmup):
                entry.set_value("price", str(50500 + r))  # inside the 5% fat-finger band
                entry.query_one("#in-price").focus()
                before = set(engine._orders)
                t0 = time.perf_counter()
                await pilot.press("enter")
                new_id = None
                while True:
                    await asyncio.sleep(0.001)
                    if new_id is None:
                        fresh = set(engine._orders) - before
                        new_id = next(iter(fresh)) if fresh else None
                    if new_id is not None and new_id in painted:
                        if r >= warmup:
                            latencies.append(painted[new_id] - t0)
                        break
                    if time.perf_counter() - t0 > 5:
                        raise RuntimeError("the new order never appeared on screen")
                await asyncio.sleep(0.02)
            elapsed = time.perf_counter() - t_start
            stop.set()
            await churner
            await app.shutdown()
    latencies.sort()
    return {
        "tracked_orders": n,
        "updates_per_s": round(updates / elapsed),
        "keypress_to_visible_p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "keypress_to_visible_p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 1),
        "rounds": rounds,
    }


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    best, median, settled_best, settled_median = cold_start()
    result = {"benchmark": "console", "cold_start_ms_best": best, "cold_start_ms_median": median,
              "cold_start_settled_ms_best": settled_best, "cold_start_settled_ms_median": settled_median}
    result.update(asyncio.run(keypress_latency(n, rounds)))
    result["target"] = "cold start <= 300 ms; p99 <= 100 ms at 10,000 orders and 1,000 updates/s"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
