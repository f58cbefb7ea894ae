"""The orders pane: every tracked order, line-based so 10,000 rows cost what the screen shows.

A DataTable repaint walks the whole table (tens of ms at 10,000 rows); this view renders only
the visible lines, from a per-row cache keyed by the order's revision. Updates arrive as
batches of the newest order snapshots (keyed diff: a stale revision never overwrites a newer
one). Final orders leave the "open" view for "history".
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from core.models import Order, OrderStatus
from widgets.messages import CancelRequested, CancelSymbolRequested, ModifyRequested, OrdersFilterChanged

COLUMNS: tuple[tuple[str, int], ...] = (
    ("Time", 8), ("Symbol", 10), ("Side", 4), ("Type", 11), ("Amount", 10), ("Filled", 10),
    ("Price", 11), ("Avg fill", 11), ("Status", 16), ("Client id", 16),
)
# Below this width the pane shows the columns a trader acts on (80x24 terminals).
COMPACT: tuple[tuple[str, int], ...] = (
    ("Symbol", 9), ("Side", 4), ("Amount", 8), ("Price", 9), ("Status", 10),
)
COMPACT_BELOW = 110
FILTERS = ("open", "all", "history")

_STATUS_CLASS = {
    OrderStatus.NEW: "pending", OrderStatus.SUBMITTING: "pending", OrderStatus.UNRESOLVED: "unresolved",
    OrderStatus.OPEN: "open", OrderStatus.TRIGGERED: "open", OrderStatus.PARTIALLY_FILLED: "partial",
    OrderStatus.CANCELLING: "pending", OrderStatus.FILLED: "filled", OrderStatus.CANCELLED: "done",
    OrderStatus.EXPIRED: "done", OrderStatus.REJECTED: "bad", OrderStatus.FAILED: "bad",
}


def header_line(columns: tuple[tuple[str, int], ...] = COLUMNS) -> str:
    return " ".join(name.ljust(width)[:width] for name, width in columns)


def _num(value: object) -> str:
    if value is None:
        return ""
    text = f"{value:f}" if not isinstance(value, str) else value
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


@dataclass(frozen=True, slots=True)
class _Key:
    order_id: str
    revision: int
    width: int
    selected: bool


class OrdersView(ScrollView, can_focus=True):
    """Keys: c cancel, m modify, C cancel all of the symbol, f filter, up/down to select."""

    BINDINGS = [
        Binding("c", "cancel_order", "Cancel", id="orders.cancel"),
        Binding("m", "modify_order", "Modify", id="orders.modify"),
        Binding("C", "cancel_symbol", "Cancel symbol", id="orders.cancel_symbol"),
        Binding("f", "cycle_filter", "Filter", id="orders.filter"),
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "cursor(-10)", show=False),
        Binding("pagedown", "cursor(10)", show=False),
        Binding("home", "cursor_home", show=False),
        Binding("end", "cursor_end", show=False),
    ]
    COMPONENT_CLASSES = {
        "orders--buy", "orders--sell", "orders--open", "orders--partial", "orders--filled",
        "orders--done", "orders--bad", "orders--pending", "orders--unresolved", "orders--cursor", "orders--header",
    }
    DEFAULT_CSS = """
    OrdersView { height: 1fr; }
    """

    filter: reactive[str] = reactive("open")

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._orders: dict[str, Order] = {}
        self._order_ids: list[str] = []  # newest first
        self._rows: list[str] = []  # the ids the current filter shows
        self._cache: dict[_Key, Strip] = {}
        self._counts: tuple[str, int, int] | None = None
        self.cursor = 0

    # -- data ---------------------------------------------------------------------------------

    def upsert(self, orders: list[Order]) -> None:
        """Apply the newest snapshots; an older revision than the one shown is ignored.

        Incremental: a changed order is re-rendered from its new revision, a new order is put
        in place, an order that leaves the filter is dropped. Nothing walks all 10,000 rows
        unless the newcomers arrive out of time order."""
        added = []
        for order in orders:
            prev = self._orders.get(order.id)
            if prev is not None and prev.revision > order.revision:
                continue
            self._orders[order.id] = order
            if prev is None:
                added.append(order.id)
            elif self._match(prev) != self._match(order):
                if self._match(order):
                    self._insert_row(order.id)
                else:
                    self._remove_row(order.id)
        if added:
            added.sort(key=lambda i: (self._orders[i].created_at, i), reverse=True)
            head = self._orders[self._order_ids[0]] if self._order_ids else None
            if head is None or self._orders[added[-1]].created_at >= head.created_at:
                self._order_ids[:0] = added  # the usual case: newest first, prepend
                self._rows[:0] = [i for i in added if self._match(self._orders[i])]
                if self._rows and self.cursor and added:
                    self.cursor += sum(1 for i in added if self._match(self._orders[i]))
            else:
                self._order_ids.extend(added)
                self._order_ids.sort(key=lambda i: (self._orders[i].created_at, i), reverse=True)
                self._refilter()
                return
        if len(self._cache) > 4096:
            self._cache.clear()
        self._rows_changed()

    def _insert_row(self, order_id: str) -> None:
        """Put a row back in newest-first position (an order that re-enters the filter)."""
        order = self._orders[order_id]
        key = (order.created_at, order_id)
        rows = self._rows
        lo, hi = 0, len(rows)
        while lo < hi:  # rows are sorted newest first
            mid = (lo + hi) // 2
            other = self._orders[rows[mid]]
            if (other.created_at, other.id) > key:
                lo = mid + 1
            else:
                hi = mid
        rows.insert(lo, order_id)

    def _remove_row(self, order_id: str) -> None:
        try:
            index = self._rows.index(order_id)
        except ValueError:
            return
        del self._rows[index]
        if index < self.cursor:
            self.cursor -= 1

    def _rows_changed(self) -> None:
        self.cursor = min(self.cursor, max(len(self._rows) - 1, 0))
        cols = self.columns
        self.virtual_size = Size(sum(w for _, w in cols) + len(cols), len(self._rows) + 1)  # + header
        counts = (self.filter, len(self._rows), len(self._orders))
        if counts != self._counts:
            self._counts = counts
            self.post_message(OrdersFilterChanged(*counts))
        self.refresh()

    def _match(self, order: Order) -> bool:
        f = self.filter
        if f == "open":
            return order.status.is_live
        if f == "history":
            return order.status.is_final
        if f == "all":
            return True
        return order.symbol == f

    def _refilter(self) -> None:
        """Recompute the rows from scratch (a filter change, or out-of-order arrivals)."""
        selected = self.selected_id
        orders = self._orders
        self._rows = [i for i in self._order_ids if self._match(orders[i])]
        if selected is not None:
            with suppress(ValueError):
                self.cursor = self._rows.index(selected)
        self._rows_changed()

    def watch_filter(self) -> None:
        self._refilter()

    @property
    def selected_id(self) -> str | None:
        if 0 <= self.cursor < len(self._rows):
            return self._rows[self.cursor]
        return None

    @property
    def selected(self) -> Order | None:
        sid = self.selected_id
        return self._orders.get(sid) if sid else None

    @property
    def row_count(self) -> int:
        return len(self._rows)

    def order(self, order_id: str) -> Order | None:
        return self._orders.get(order_id)

    def visible_ids(self) -> list[str]:
        top = int(self.scroll_offset.y)
        return self._rows[top : top + max(self.size.height - 1, 0)]

    @property
    def columns(self) -> tuple[tuple[str, int], ...]:
        return COMPACT if self.size.width < COMPACT_BELOW else COLUMNS

    # -- rendering ------------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        if y == 0:  # the column header stays put while the rows scroll under it
            header = Strip([Segment(header_line(self.columns), self.get_component_rich_style("orders--header"))])
            return header.extend_cell_length(scroll_x + width, self.rich_style).crop(scroll_x, scroll_x + width)
        index = scroll_y + y - 1
        if index >= len(self._rows):
            return Strip.blank(width, self.rich_style)
        order = self._orders[self._rows[index]]
        key = _Key(order.id, order.revision, width, index == self.cursor and self.has_focus)
        strip = self._cache.get(key)
        if strip is None:
            strip = self._cache[key] = self._render_order(order, key.selected, scroll_x + width)
        return strip.crop(scroll_x, scroll_x + width)

    def _render_order(self, order: Order, selected: bool, width: int) -> Strip:
        base = self.rich_style
        style = self.get_component_rich_style
        side_style = style("orders--buy" if order.side.value == "buy" else "orders--sell", partial=True)
        status_style = style(f"orders--{_STATUS_CLASS[order.status]}", partial=True)
        price = order.price if order.price is not None else order.stop_price
        status = order.status.value + ("*" if order.emulated else "")
        values = {
            "Time": (order.created_at.strftime("%H:%M:%S"), None),
            "Symbol": (order.symbol, None),
            "Side": (order.side.value, side_style),
            "Type": (order.type.value, None),
            "Amount": (_num(order.amount), None),
            "Filled": (_num(order.filled), None),
            "Price": (_num(price), None),
            "Avg fill": (_num(order.average_price), None),
            "Status": (status, status_style),
            "Client id": (order.client_order_id, None),
        }
        segments = []
        for name, w in self.columns:
            text, cell_style = values[name]
            segments.append(Segment(text[:w].ljust(w) + " ", base + cell_style if cell_style else base))
        strip = Strip(segments)
        if selected:
            strip = strip.apply_style(style("orders--cursor", partial=True))
        return strip.extend_cell_length(width, base)

    def on_resize(self) -> None:
        self._cache.clear()  # the column set depends on the width
        self._refilter()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    # -- actions --------------------------------------------------------------------------------

    def action_cursor(self, delta: int) -> None:
        if not self._rows:
            return
        self.cursor = max(0, min(len(self._rows) - 1, self.cursor + delta))
        self.scroll_to_region_cursor()
        self.refresh()

    def action_cursor_home(self) -> None:
        self.action_cursor(-len(self._rows))

    def action_cursor_end(self) -> None:
        self.action_cursor(len(self._rows))

    def scroll_to_region_cursor(self) -> None:
        top = int(self.scroll_offset.y)
        height = max(self.size.height - 1, 1)  # the header takes a line
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False)

    def on_click(self, event: object) -> None:
        y = getattr(event, "y", None)
        if y is not None and int(y) >= 1:
            self.cursor = min(int(self.scroll_offset.y) + int(y) - 1, max(len(self._rows) - 1, 0))
            self.refresh()

    def action_cancel_order(self) -> None:
        if self.selected_id:
            self.post_message(CancelRequested(self.selected_id))

    def action_modify_order(self) -> None:
        if self.selected_id:
            self.post_message(ModifyRequested(self.selected_id))

    def action_cancel_symbol(self) -> None:
        order = self.selected
        if order is not None:
            self.post_message(CancelSymbolRequested(order.symbol))

    def action_cycle_filter(self) -> None:
        symbols = sorted({o.symbol for o in self._orders.values()})
        cycle = [*FILTERS, *symbols]
        try:
            self.filter = cycle[(cycle.index(self.filter) + 1) % len(cycle)]
        except ValueError:
            self.filter = "open"
