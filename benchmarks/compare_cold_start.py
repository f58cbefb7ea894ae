"""Cold start of this tree against another build, runs alternated so both see the same machine.

The VM's speed drifts by 15 % within an hour, so two cold-start figures taken at different times
don't compare; alternating the two builds run by run does. Prints JSON: min, p25 and median (ms)
of each tree.

    git worktree add /tmp/before <commit>
    .venv/bin/python benchmarks/compare_cold_start.py /tmp/before [RUNS]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_console import _STARTUP, startup_figures  # noqa: E402


def main(other: Path, runs: int) -> dict[str, object]:
    trees = [other.resolve(), ROOT]
    env = {k: v for k, v in os.environ.items()
           if k != "PYTHONDONTWRITEBYTECODE" and not k.upper().startswith("TRADEDESK_")}
    samples: dict[Path, list[float]] = {t: [] for t in trees}  # to the first frame
    settled: dict[Path, list[float]] = {t: [] for t in trees}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs + 1):  # the first round writes the bytecode caches: not counted
            for n, tree in enumerate(trees):
                # each tree its own user cache folder, as one install has
                out = subprocess.run(
                    [sys.executable, "-c", _STARTUP, repr(time.time()), f"{tmp}/{i}-{n}.sqlite"], cwd=tree,
                    env={**env, "PYTHONPATH": str(tree), "COLUMNS": "80", "LINES": "24",
                         "XDG_CACHE_HOME": f"{tmp}/cache-{n}"},
                    capture_output=True, text=True, check=True,
                )
                if i:
                    first, after = startup_figures(out.stdout)
                    samples[tree].append(first)
                    settled[tree].append(after)

    def figures(values: list[float]) -> dict[str, float]:
        s = sorted(values)
        return {"min_ms": s[0], "p25_ms": s[len(s) // 4], "median_ms": round(statistics.median(s), 1)}

    return {"benchmark": "cold_start_compare", "runs": runs,
            "other": {"tree": str(trees[0]), **figures(samples[trees[0]]),
                      "settled": figures(settled[trees[0]])},
            "this": {"tree": str(ROOT), **figures(samples[ROOT]), "settled": figures(settled[ROOT])}}


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: compare_cold_start.py OTHER_TREE [RUNS]")
    print(json.dumps(main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 15)))
