"""The console: the Textual app, its screens, the CLI entry point."""

from console import gc_pause

gc_pause.pause()  # first thing: every import below this package is start-up (see gc_pause)

from platformdirs import user_cache_path  # noqa: E402

from console import module_cache  # noqa: E402

_cache_folder = user_cache_path("tradedesk", appauthor=False)

# first: every module imported from here on is one it can serve
module_cache.install(_cache_folder)

from console import regex_cache  # noqa: E402

regex_cache.install(_cache_folder)  # before the patterns dataclasses, Textual's CSS tokenizer, Rich compile

from console import code_cache  # noqa: E402

# before Textual, pydantic and the core are imported: their dataclasses are most of what it holds
code_cache.install(_cache_folder)
