"""The `tradedesk` command writes its start-up caches after its first frame, and its next start
uses them before its first frame: the code Python generates (console.code_cache), the patterns it
compiles (console.regex_cache) and the modules it imports (console.module_cache). Each start is
a new process, with bytecode writing on (the module file is made from the ``.pyc`` files Python
writes) and a user cache folder of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# The command, headless, until its first frame; then what each cache did.
_COMMAND = textwrap.dedent("""
    import json, sys
    import console.cli, console.app
    from console import code_cache, module_cache, regex_cache

    class Probe(console.app.TradedeskApp):
        def run(self, **kwargs):
            self.run_loops = False
            return super().run(headless=True, size=(100, 30))

        def _after_first_frame(self):  # the console's own: it starts the caches' writes
            self.at_first_frame = {**code_cache.stats, "served": len(module_cache._finder.served),
                                   "regex_hits": regex_cache.stats["hits"], "regex_compiled": regex_cache.stats["compiled"]}
            super()._after_first_frame()
            self.call_later(self._report)

        async def _report(self):
            code_saved = await self.code_written if self.code_written is not None else None
            modules_saved = await self.modules_written if self.modules_written is not None else None
            regexes_saved = await self.regexes_written if self.regexes_written is not None else None
            print(json.dumps({"code_saved": code_saved, "modules_saved": modules_saved, "regexes_saved": regexes_saved,
                              "loaded": len(code_cache._loaded), **self.at_first_frame}))
            self.exit()

    console.app.TradedeskApp = Probe
    console.cli.main(["--db", sys.argv[1]])
""")


def test_the_command_writes_its_caches_after_the_first_frame_and_the_next_start_uses_them(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))

    def start(db: str) -> dict[str, Any]:
        out = subprocess.run([sys.executable, "-c", _COMMAND, str(tmp_path / db)], capture_output=True,
                             text=True, env=env, cwd=ROOT, timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.strip().splitlines()[-1])

    first = start("a.sqlite")  # counts up to the first frame
    assert first["loaded"] == 0 and first["served"] == 0
    assert first["code_saved"] is True and first["modules_saved"] is True and first["regexes_saved"] is True
    assert first["regex_hits"] == 0 and int(first["regex_compiled"]) > 50  # Textual's, Rich's, logging's...
    assert int(first["compiled"]) > 500  # Textual's, pydantic's, the core's and the widgets' dataclasses
    second = start("b.sqlite")
    assert int(second["loaded"]) >= int(first["compiled"])
    assert second["compiled"] == 0 and second["hits"] == first["hits"] + first["compiled"]
    assert int(second["served"]) > 300  # Textual, Rich, pydantic, asyncio, the core, the widgets
    assert second["regex_hits"] == first["regex_compiled"]
    assert (second["code_saved"], second["modules_saved"]) == (False, False), second  # the same: not rewritten
    # The style cache, read from the second start on, globs for Textual's modules before the first
    # frame: one pattern more, then none.
    third = start("c.sqlite")
    assert third["regex_compiled"] == 0 and third["compiled"] == 0
    assert (third["code_saved"], third["modules_saved"], third["regexes_saved"]) == (False, False, False), third
