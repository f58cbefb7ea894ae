"""The event log (widgets/event_log.py) renders what Textual's RichLog rendered for it, line for
line, without importing RichLog (a start-up cost)."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.app import App, ComposeResult
from textual.containers import Horizontal
from textual.widgets import RichLog

from widgets.event_log import _LEVEL_STYLE, EventLog

AT = datetime(2026, 1, 2, 12, 30, 5)


class Both(App[None]):
    """The event log beside the RichLog it replaces (as it was configured), same width."""

    CSS = "EventLog, RichLog { width: 1fr; height: 1fr; }"
    AUTO_FOCUS = None  # a focused log is tinted: neither is

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield EventLog()
            yield RichLog(max_lines=2000, wrap=True, markup=False, highlight=False)

    def on_mount(self) -> None:  # before either knows its size: both keep the lines for later
        self.add("info", "journal restored")
        self.add("error", "refused:\tprice outside the band")

    def add(self, level: str, text: str) -> None:
        self.query_one(EventLog).add(AT, level, text)
        line = Text(AT.strftime("%H:%M:%S "), style="dim")  # what EventLog.add wrote to its RichLog
        line.append(text, style=_LEVEL_STYLE.get(level, ""))
        self.query_one(RichLog).write(line)


def same_picture(app: Both) -> list[str]:
    ours, theirs = app.query_one(EventLog), app.query_one(RichLog)
    assert ours.lines == theirs.lines
    assert ours.virtual_size == theirs.virtual_size
    assert ours.scroll_offset == theirs.scroll_offset
    height = ours.scrollable_content_region.height
    assert [ours.render_line(y) for y in range(height)] == [theirs.render_line(y) for y in range(height)]
    return [line.text.rstrip() for line in ours.lines]


async def test_early_lines_show_in_order_with_their_styles() -> None:
    app = Both()
    async with app.run_test(size=(100, 12)) as pilot:
        await pilot.pause()
        lines = same_picture(app)
        assert lines[0] == "12:30:05 journal restored"
        assert lines[1].startswith("12:30:05 refused:") and "\t" not in lines[1]
        error = app.query_one(EventLog).lines[1]
        assert any(seg.style and seg.style.bold and seg.style.color.name == "red" for seg in error)


async def test_long_lines_wrap_and_scroll_like_richlog() -> None:
    app = Both()
    async with app.run_test(size=(100, 12)) as pilot:
        await pilot.pause()
        app.add("warning", "x" * 100)
        app.add("fill", "filled " + "word " * 30)
        await pilot.pause()
        lines = same_picture(app)
        assert len(lines) > 4  # both long lines wrapped
        assert app.query_one(EventLog).virtual_size.width == 78  # RichLog's minimum width


async def test_only_the_newest_2000_lines_are_kept_and_the_end_is_shown() -> None:
    app = Both()
    async with app.run_test(size=(100, 12)) as pilot:
        await pilot.pause()
        for i in range(EventLog.MAX_LINES + 5):
            app.add("info", f"line {i}")
        await pilot.pause()
        lines = same_picture(app)
        assert len(lines) == EventLog.MAX_LINES == 2000
        assert lines[0] == "12:30:05 line 5" and lines[-1] == "12:30:05 line 2004"
        log = app.query_one(EventLog)
        assert log.scroll_offset.y == log.max_scroll_y > 0


class Recording(EventLog):
    """Notes what each painted row showed, and whether the log knew its size then."""

    def __init__(self) -> None:
        super().__init__()
        self.painted: list[tuple[bool, str]] = []

    def render_line(self, y: int):  # noqa: ANN201 - a Strip, as EventLog's
        strip = super().render_line(y)
        self.painted.append((self._size_known, strip.text.rstrip()))
        return strip


class Alone(App[None]):
    """A recording event log alone, given its lines before its first layout."""

    AUTO_FOCUS = None

    def __init__(self, texts: list[str] | None = None) -> None:
        super().__init__()
        self.texts = texts or ["journal restored"]

    def compose(self) -> ComposeResult:
        yield Recording()

    def on_mount(self) -> None:
        for text in self.texts:
            self.query_one(EventLog).add(AT, "info", text)


async def test_early_lines_are_painted_in_the_first_frame() -> None:
    # The first frame is drawn by the first layout, before the log gets its Resize. The lines
    # written before it used to wait for that Resize: a second layout and frame later.
    app = Alone()
    async with app.run_test(size=(60, 8)) as pilot:
        await pilot.pause()
        first_frame = [text for known, text in app.query_one(Recording).painted if not known]
        assert "12:30:05 journal restored" in first_frame


LONG = "journal /" + "p" * 53 + " restored"  # 80 cells with its time: wider than MIN_WIDTH (78)


async def test_a_long_early_line_wraps_again_once_the_log_is_wider_than_it_was_drawn() -> None:
    class Wide(Both):
        def on_mount(self) -> None:
            self.add("info", LONG)

    app = Wide()
    # Each log is 118 cells wide, the test console 80: the line fits on one row, as in RichLog,
    # though it was first drawn on two (78 wide, before the width was known).
    async with app.run_test(size=(240, 12)) as pilot:
        await pilot.pause()
        lines = same_picture(app)  # then Both.on_mount's two lines
        assert lines[0] == f"12:30:05 {LONG}" and len(lines) == 3


async def test_a_long_early_line_stays_as_drawn_in_a_narrow_log() -> None:
    class Narrow(Both):
        def on_mount(self) -> None:
            self.add("info", LONG)

    app = Narrow()
    async with app.run_test(size=(100, 12)) as pilot:  # each log ~50 wide: drawn 78 wide, as RichLog
        await pilot.pause()
        lines = same_picture(app)
        assert lines[:2] == ["12:30:05 journal /" + "p" * 53, "restored"]


async def test_more_early_lines_than_rows_show_the_newest_in_the_first_frame() -> None:
    app = Alone([f"line {i}" for i in range(12)])
    async with app.run_test(size=(60, 8)) as pilot:
        await pilot.pause()
        log = app.query_one(Recording)
        height = log.scrollable_content_region.height
        first_frame = [text for known, text in log.painted if not known]
        # the log had not scrolled yet (its scroll waits for a refresh): its end all the same
        assert first_frame == [f"12:30:05 line {i}" for i in range(12 - height, 12)]
        assert log.scroll_offset.y == log.max_scroll_y == 12 - height
        # nor any frame after it: the log is scrolled to its end as soon as it knows its size
        assert "12:30:05 line 0" not in [text for known, text in log.painted]
        assert [log.render_line(y).text.rstrip() for y in range(height)] == first_frame


async def test_long_early_lines_wrapped_again_still_show_the_end_in_every_frame() -> None:
    app = Alone([f"journal /{'p' * 51}{i:02} restored" for i in range(12)])  # each as LONG
    async with app.run_test(size=(240, 8)) as pilot:
        await pilot.pause()
        await pilot.pause()
        log = app.query_one(Recording)
        assert len(log.lines) == 12  # one row each, now that the log is 238 wide
        height = log.scrollable_content_region.height
        shown = [log.render_line(y).text.rstrip() for y in range(height)]
        assert shown[-1].endswith("11 restored") and log.scroll_offset.y == log.max_scroll_y
        # every frame showed the newest line last: the first drew it on two rows (78 wide)
        rows = [text for _, text in log.painted]
        frames = [rows[i:i + height] for i in range(0, len(rows), height)]
        assert frames[0][-2:] == [f"12:30:05 journal /{'p' * 51}11", "restored"]
        assert len(frames) > 1 and all(f[-1].endswith("11 restored") for f in frames[1:]), frames
