"""The console: the Textual app, its screens, the CLI entry point."""

from console import gc_pause

gc_pause.pause()  # first thing: every import below this package is start-up (see gc_pause)
