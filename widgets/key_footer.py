"""The footer of key bindings, drawn as one line.

Textual's Footer is a widget per key, all unmounted and mounted again whenever the bindings
change, which is at every focus change. At start-up that came after the first frame: ten widgets
mounted and styled, and a layout of the whole screen. This footer shows the same keys in the same
colours and order (the focused widget's first), with the HALT key pinned first, as one line
repainted in place. A click presses the key under the pointer.

Too narrow for every key, the padding goes first, then the keys at the end of the line ("…"); the
command palette's key stays on the right unless even the first key (HALT) would not fit beside it.
"""

from __future__ import annotations

from typing import NamedTuple

from rich.style import Style
from rich.text import Text
from textual import events
from textual.screen import Screen
from textual.widget import Widget

HALT_ACTION = "halt"
_PALETTE_RULE = "▏"  # Textual's Footer draws the palette's key behind a thin rule


class FooterKey(NamedTuple):
    key: str  # what a click presses
    display: str  # as the app shows it ("^k")
    description: str
    enabled: bool


class FooterKeys(NamedTuple):
    keys: list[FooterKey]
    palette: FooterKey | None


class KeyFooter(Widget, can_focus=False):
    ALLOW_SELECT = False
    COMPONENT_CLASSES = {"key-footer--key", "key-footer--description", "key-footer--hover", "key-footer--rule"}
    DEFAULT_CSS = """
    KeyFooter {
        dock: bottom;
        height: 1;
        color: $footer-foreground;
        background: $footer-background;
        & > .key-footer--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        & > .key-footer--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
        & > .key-footer--hover { background: $block-hover-background; }
        & > .key-footer--rule { color: $foreground 20%; }
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: FooterKeys | None = None  # None: read again at the next paint
        self._spans: list[tuple[int, int, FooterKey]] = []  # the cells each key was drawn in
        self._hover: FooterKey | None = None

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self.bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def bindings_changed(self, screen: Screen) -> None:
        # As Textual's Footer: the app losing focus blurs the focused widget; its keys stay shown.
        if screen.app.app_focus and screen is self.screen:
            self._shown = None
            self.refresh()

    @property
    def shown(self) -> FooterKeys:
        if self._shown is None:
            self._shown = self._read_bindings()
        return self._shown

    def _read_bindings(self) -> FooterKeys:
        app = self.app
        active = self.screen.active_bindings
        by_action: dict[str, FooterKey] = {}  # the first binding of each action, as Textual's Footer
        for _node, binding, enabled, _tooltip in active.values():
            if binding.show and binding.action not in by_action:
                by_action[binding.action] = FooterKey(binding.key, app.get_key_display(binding), binding.description,
                                                      enabled)
        keys = [key for action, key in sorted(by_action.items(), key=lambda item: item[0] != HALT_ACTION)]
        palette = active.get(app.COMMAND_PALETTE_BINDING) if app.ENABLE_COMMAND_PALETTE else None
        return FooterKeys(keys, None if palette is None else FooterKey(
            palette.binding.key, app.get_key_display(palette.binding), palette.binding.description, palette.enabled))

    def _key_text(self, key: FooterKey, compact: bool, palette: bool = False) -> Text:
        style = self.get_component_rich_style
        text = Text(end="")
        text.append(key.display if compact else f"{'' if palette else ' '}{key.display} ", style("key-footer--key"))
        if key.description:
            text.append(f" {key.description}" if compact else f"{key.description} ", style("key-footer--description"))
        if not key.enabled:
            text.stylize(Style(dim=True))
        if key == self._hover:  # the background only: the key keeps its colour
            text.stylize(Style(bgcolor=style("key-footer--hover").bgcolor))
        return text

    def render(self) -> Text:
        return self.line(self.size.width)

    def line(self, width: int) -> Text:
        """The footer drawn ``width`` cells wide; notes where each key went, for clicks."""
        keys, palette = self.shown
        right = Text(end="")
        if palette is not None:
            right.append(_PALETTE_RULE, self.get_component_rich_style("key-footer--rule"))
            right.append_text(self._key_text(palette, compact=False, palette=True))
            first = self._key_text(keys[0], compact=True).cell_len if keys else 0
            if right.cell_len + first > width:  # too narrow for both: the first key (HALT) wins
                palette, right = None, Text(end="")
        room = width - right.cell_len
        for compact in (False, True):
            gap = " " if compact else ""  # the padded keys end in a space already
            texts = [self._key_text(key, compact) for key in keys]
            if sum(t.cell_len for t in texts) + len(gap) * max(len(texts) - 1, 0) <= room:
                shown, more = len(texts), ""
                break
        else:  # the last keys give way to "…", whole: a click on a key always presses that key
            more = f"{gap}…"
            shown = len(texts)
            while shown and sum(t.cell_len for t in texts[:shown]) + len(gap) * (shown - 1) + len(more) > room:
                shown -= 1
            if not shown:  # not even one key beside "…": the first (HALT) alone if it fits
                shown = 1 if texts and texts[0].cell_len <= room else 0
                more = "" if shown else "…"[:max(room, 0)]
        line = Text(end="")
        self._spans = []
        for key, text in zip(keys[:shown], texts[:shown], strict=True):
            if line:
                line.append(gap)
            self._spans.append((line.cell_len, line.cell_len + text.cell_len, key))
            line.append_text(text)
        line.append(more)
        if palette is not None:
            start = width - right.cell_len
            line.pad_right(start - line.cell_len)
            self._spans.append((start + len(_PALETTE_RULE), width, palette))
            line.append_text(right)
        return line

    def _key_at(self, x: int) -> FooterKey | None:
        return next((key for start, end, key in self._spans if start <= x < end), None)

    def on_mouse_down(self, event: events.MouseDown) -> None:
        key = self._key_at(event.x)
        if key is None:
            return
        if key.enabled:
            self.app.simulate_key(key.key)
        else:
            self.app.bell()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        self._set_hover(self._key_at(event.x))

    def on_leave(self) -> None:
        self._set_hover(None)

    def _set_hover(self, key: FooterKey | None) -> None:
        if key != self._hover:
            self._hover = key
            self.refresh()
