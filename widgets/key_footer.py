"""The footer of key bindings: Textual's Footer, rebuilt only when its keys change.

Textual's Footer rebuilds every key whenever the bindings change; at start-up they change three
times before the first frame (screen, focus, app focus), mostly to show the same nine keys
again, and each new key restyles twice more while it mounts (its ``compact`` starts True, then
takes the footer's False). Coalescing the rebuilds, skipping those that change nothing and
giving each key the footer's setting before it mounts took ~30 ms off the cold start.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey


class KeyFooter(Footer):
    _rebuild_pending = False
    _shown: list[tuple[object, ...]] | None = None

    def bindings_changed(self, screen: Screen) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus or not (self.is_attached and screen is self.screen):
            return
        if not self._rebuild_pending:  # one rebuild after the refresh shows the newest bindings
            self._rebuild_pending = True
            self.call_after_refresh(self._rebuild)

    async def _rebuild(self) -> None:
        self._rebuild_pending = False
        shown = self._shown_bindings()
        if shown != self._shown:  # a focus change often leaves the footer's keys as they were
            self._shown = shown
            await self.recompose()

    def _shown_bindings(self) -> list[tuple[object, ...]]:
        """What compose shows: the shown bindings and the command palette's key."""
        bindings = self.screen.active_bindings
        palette = bindings.get(self.app.COMMAND_PALETTE_BINDING)
        shown = [(b.key, b.action, b.description, b.tooltip, b.group, enabled, tooltip)
                 for _, b, enabled, tooltip in bindings.values() if b.show]
        return [*shown, (self.show_command_palette, palette[1:] if palette is not None else None)]

    def compose(self) -> ComposeResult:
        for widget in super().compose():
            # The keys bound to the footer's compact (all but the palette's, which keeps its own)
            if isinstance(widget, FooterKey) and not widget.has_class("-command-palette"):
                widget.set_reactive(FooterKey.compact, self.compact)
            yield widget
