"""The event log: refusals, fills, breaker trips, halts and errors, each with its time.

It renders lines as Textual's RichLog does (same widths, wrapping, scrolling and look), for the
one kind of content written here: styled text. RichLog itself imports rich.pretty, which imports
attrs: ~9 ms of every cold start, for pretty-printing Python objects the log never shows.
"""

from __future__ import annotations

from datetime import datetime

from rich.measure import measure_renderables
from rich.segment import Segment
from rich.text import Text
from textual.cache import LRUCache
from textual.events import Resize
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from widgets.in_place import set_virtual_size
from widgets.keys_in_order import KeysInOrder

_LEVEL_STYLE = {"info": "", "warning": "bold yellow", "error": "bold red", "fill": "green"}


class EventLog(KeysInOrder, ScrollView, can_focus=True):
    DEFAULT_CSS = """
    EventLog {
        height: 1fr;
        background: $surface;
        color: $foreground;
        overflow-y: scroll;
        &:focus { background-tint: $foreground 5%; }
    }
    """

    MAX_LINES = 2000
    MIN_WIDTH = 78  # lines render at least this wide (RichLog's default), scrolling sideways

    def __init__(self, id: str | None = "event-log") -> None:
        super().__init__(id=id)
        self.lines: list[Strip] = []
        self._start_line = 0  # lines dropped from the top (keys the line cache)
        self._widest_line_width = 0
        self._line_cache: LRUCache[tuple[int, int, int, int], Strip] = LRUCache(1024)
        # Written before the first layout: drawn at MIN_WIDTH, so they are in the first frame
        # (waiting for the width cost a second layout and a frame). Kept until the width is
        # known, to wrap again should that differ.
        self._early: list[Text] | None = []
        self._early_wrapped = False  # one of them was wider than MIN_WIDTH
        self._size_known = False

    def add(self, at: datetime, level: str, text: str) -> None:
        line = Text(at.strftime("%H:%M:%S "), style="dim")
        line.append(text, style=_LEVEL_STYLE.get(level, ""))
        self.write(line)

    def write(self, text: Text) -> None:
        if self._early is not None:
            self._early.append(text.copy())
        text.expand_tabs()
        console = self.app.console
        options = console.options
        width = measure_renderables(console, options, [text]).maximum
        if self._early is not None and width > self.MIN_WIDTH:
            self._early_wrapped = True
        width = max(min(width, self.scrollable_content_region.width), self.MIN_WIDTH)
        lines = list(Segment.split_lines(console.render(text, options.update_width(width))))
        if not lines:
            self._widest_line_width = max(width, self._widest_line_width)
            self.lines.append(Strip.blank(width))
        else:
            strips = Strip.from_lines(lines)
            for strip in strips:
                strip.adjust_cell_length(width)
            self.lines.extend(strips)
            if len(self.lines) > self.MAX_LINES:
                self._start_line += len(self.lines) - self.MAX_LINES
                self.refresh()
                self.lines = self.lines[-self.MAX_LINES:]
            self._widest_line_width = max(self._widest_line_width,
                                          max(sum(s.cell_length for s in line) for line in lines))
        set_virtual_size(self, Size(self._widest_line_width, len(self.lines)))
        self.scroll_end(animate=False, immediate=False, x_axis=False)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._line_cache.clear()

    def on_resize(self, event: Resize) -> None:
        if event.size.width and not self._size_known:
            self._size_known = True
            early, self._early = self._early or [], None
            if self._early_wrapped and self.scrollable_content_region.width > self.MIN_WIDTH:
                # wider than they were drawn: a long early line now wraps later, as any other
                self.lines, self._widest_line_width, self._start_line = [], 0, 0
                self._line_cache.clear()
                for text in early:
                    self.write(text)
                # their scroll waits for a refresh: the frame before it must show the end too
                self.scroll_end(animate=False, immediate=True, x_axis=False)

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return self.virtual_size.width if self._size_known else container.width

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        index = scroll_y + y
        if not self._size_known:  # the first frame: not yet scrolled, show the newest lines
            index += max(0, len(self.lines) - self.scrollable_content_region.height)
        if index >= len(self.lines):
            return Strip.blank(width, self.rich_style).apply_style(self.rich_style)
        key = (index + self._start_line, scroll_x, width, self._widest_line_width)
        line = self._line_cache.get(key)
        if line is None:
            line = self._line_cache[key] = self.lines[index].crop_extend(scroll_x, scroll_x + width, self.rich_style)
        return line.apply_style(self.rich_style)
