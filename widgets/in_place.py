"""Changes that leave every widget's size as it was: drawn without laying the screen out again.

Textual lays the whole screen out again whenever a Static's text or a scroll view's scrollable
size changes. With 10,000 tracked orders a layout costs ~10-30 ms of the event loop, and a new
order set off three or four of them (the orders' row count, the pane title's counts, the entry's
preview, a log line): most of the key-press-to-visible time. Here each change is drawn in place,
and the layout runs only when something's size does depend on it.
"""

from __future__ import annotations

from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.visual import VisualType
from textual.widget import Widget
from textual.widgets import Static


def set_virtual_size(view: ScrollView, size: Size) -> None:
    """The view's scrollable size, for a view whose own size the layout fixes. Only its
    scrollbars depend on this: their thumbs are redrawn, and showing or hiding one lays the
    screen out (their reactives do that themselves)."""
    if size == view.virtual_size:
        return
    view.set_reactive(Widget.virtual_size, size)
    view._scroll_update(size)  # scrollbars shown or hidden, thumbs, scroll offset kept in range
    view.refresh()


def update_text(static: Static, content: VisualType) -> None:
    """``static.update(content)``, with a layout only if the new content needs another height
    (a height set in cells or fractions never does)."""
    height = static.content_size.height
    static.update(content, layout=False)
    styles = static.styles
    if styles.width is not None and styles.width.is_auto:
        static.refresh(layout=True)  # the width follows the text
    elif styles.height is not None and not styles.height.is_auto:
        return
    else:
        width = static.content_size.width
        if not width or static.get_content_height(static.container_size, static.app.size, width) != height:
            static.refresh(layout=True)
