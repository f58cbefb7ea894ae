"""The orders pane: every tracked order, line-based so 10,000 rows cost what the screen shows.

A DataTable repaint walks the whole table (tens of ms at 10,000 rows); this view renders only
the visible lines, from a per-row cache keyed by the order's revision. Updates arrive as
batches of the newest order snapshots (keyed diff: a stale revision never overwrites a newer
one). Final orders leave the "open" view for "history".

Execution algorithms are parent rows (kind, progress, status, child count). Their child orders
(tagged ``algo:<id>``) are not top-level rows: they are listed under the parent when it is
expanded (enter/space), whatever the filter; a finished algorithm leaves "open" like an order.
A parent row's key is its tag, ``algo:<id>``.
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

from core.algos_model import (
    TAG_PREFIX,
    AlgoKind,
    AlgoStatus,
    IcebergParams,
    LimitThenMarketParams,
    ParentOrder,
    TwapParams,
)
from core.models import Order, OrderStatus
from widgets.in_place import set_virtual_size
from widgets.keys_in_order import KeysInOrder
from widgets.messages import (
    AlgoCancelRequested,
    AlgoPauseRequested,
    CancelRequested,
    CancelSymbolRequested,
    ModifyRequested,
    OrdersFilterChanged,
)

COLUMNS: tuple[tuple[str, int], ...] = (
    ("Time", 8), ("Symbol", 10), ("Side", 4), ("Type", 11), ("Amount", 10), ("Filled", 10),
    ("Price", 11), ("Avg fill", 11), ("Status", 16), ("Tag", 22), ("Client id", 16),
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
_ALGO_CLASS = {
    AlgoStatus.RUNNING: "open", AlgoStatus.PAUSED: "pending", AlgoStatus.COMPLETED: "filled",
    AlgoStatus.CANCELLED: "done", AlgoStatus.STOPPED: "partial", AlgoStatus.FAILED: "bad",
}
_ALGO_NAME = {AlgoKind.TWAP: "twap", AlgoKind.ICEBERG: "iceberg", AlgoKind.LIMIT_THEN_MARKET: "limit→mkt"}
_COLLAPSED, _EXPANDED, _CHILD = "▸ ", "▾ ", "└ "


def header_line(columns: tuple[tuple[str, int], ...] = COLUMNS) -> str:
    return " ".join(name.ljust(width)[:width] for name, width in columns)


def _num(value: object) -> str:
    if value is None:
        return ""
    text = f"{value:f}" if not isinstance(value, str) else value
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def progress(parent: ParentOrder) -> str:
    """Filled share of the parent, rounded down: 100% only when it is all filled."""
    return f"{int(parent.filled * 100 / parent.amount)}%" if parent.amount else ""


def _algo_price(parent: ParentOrder) -> object:
    params = parent.params
    if isinstance(params, IcebergParams | LimitThenMarketParams):
        return params.price
    assert isinstance(params, TwapParams)
    return params.price_limit


@dataclass(frozen=True, slots=True)
class _Key:
    order_id: str  # or a parent row's key
    revision: int
    width: int
    selected: bool
    shape: str = ""  # "child" for a child row, the expand marker for a parent row


class OrdersView(KeysInOrder, ScrollView, can_focus=True):
    """Keys: c cancel, m modify, C cancel all of the symbol, f filter, up/down to select; on an
    algorithm's row: enter/space expand, p pause/resume, c cancel the algorithm."""

    BINDINGS = [
        Binding("c", "cancel_order", "Cancel", id="orders.cancel"),
        Binding("m", "modify_order", "Modify", id="orders.modify"),
        Binding("enter,space", "toggle_algo", "Expand algo", id="orders.expand_algo"),
        Binding("p", "pause_algo", "Pause/resume algo", id="orders.pause_algo"),
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
        "orders--algo", "orders--child",
    }
    DEFAULT_CSS = """
    OrdersView { height: 1fr; }
    """

    filter: reactive[str] = reactive("open")

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._orders: dict[str, Order] = {}
        self._parents: dict[str, ParentOrder] = {}  # row key (the children's tag "algo:<id>") -> parent
        self._kids: dict[str, list[str]] = {}  # parent row key -> its child order ids, oldest first
        self._orphans: dict[str, list[str]] = {}  # tag -> children seen before their parent: top-level till then
        self._expanded: set[str] = set()
        self._order_ids: list[str] = []  # the top-level keys (orders outside an algorithm, parents), newest first
        self._rows: list[str] = []  # the keys the current filter shows, an expanded parent's children under it
        self._cache: dict[_Key, Strip] = {}
        self._counts: tuple[str, int, int] | None = None
        self._on_parent = False  # the cursor is on a parent row: the footer shows the algorithm keys
        self.cursor = 0

    # -- data ---------------------------------------------------------------------------------

    def upsert(self, orders: list[Order]) -> None:
        """Apply the newest snapshots; an older revision than the one shown is ignored.

        Incremental: a changed order is re-rendered from its new revision, a new order is put
        in place, an order that leaves the filter is dropped. Nothing walks all 10,000 rows
        unless the newcomers arrive out of time order."""
        added = []
        parents = self._parents
        for order in orders:
            prev = self._orders.get(order.id)
            if prev is not None and prev.revision > order.revision:
                continue
            self._orders[order.id] = order
            if order.tag in parents:  # an algorithm's child: listed under its parent only
                if prev is None:
                    self._add_child(order)
                continue
            if prev is None:
                if order.tag and order.tag.startswith(TAG_PREFIX):
                    self._orphans.setdefault(order.tag, []).append(order.id)
                added.append(order.id)
            elif self._match(prev) != self._match(order):
                if self._match(order):
                    self._insert_row(order.id)
                else:
                    self._remove_row(order.id)
        if added:
            added.sort(key=lambda i: (self._orders[i].created_at, i), reverse=True)
            head = self._sort_key(self._order_ids[0]) if self._order_ids else None
            if head is None or (self._orders[added[-1]].created_at, added[-1]) >= head:
                self._order_ids[:0] = added  # the usual case: newest first, prepend
                self._rows[:0] = [i for i in added if self._match(self._orders[i])]
                if self._rows and self.cursor and added:
                    self.cursor += sum(1 for i in added if self._match(self._orders[i]))
            else:
                self._order_ids.extend(added)
                self._order_ids.sort(key=self._sort_key, reverse=True)
                self._refilter()
                return
        if len(self._cache) > 4096:
            self._cache.clear()
        self._rows_changed()

    def upsert_algos(self, parents: list[ParentOrder]) -> None:
        """Apply the newest snapshots of algorithms (parent orders), like ``upsert``."""
        refilter = False
        for parent in parents:
            key = parent.tag
            prev = self._parents.get(key)
            if prev is not None and prev.revision > parent.revision:
                continue
            self._parents[key] = parent
            if prev is not None:
                if self._match(prev) != self._match(parent):
                    if self._match(parent):
                        self._insert_row(key)
                    else:
                        self._remove_row(key)
                continue
            kids = self._kids[key] = []
            orphans = self._orphans.pop(key, [])
            if orphans:  # its first children arrived before it: they move under it (rare)
                kids.extend(sorted(orphans, key=lambda i: (self._orders[i].created_at, i)))
                gone = set(orphans)
                self._order_ids = [i for i in self._order_ids if i not in gone]
                self._cache.clear()
                refilter = True
            self._insert_sorted(self._order_ids, key)
            if not refilter and self._match(parent):
                self._insert_row(key)
        if refilter:
            self._refilter()
        else:
            self._rows_changed()

    def _add_child(self, order: Order) -> None:
        key = order.tag
        assert key is not None
        kids = self._kids[key]
        kids.append(order.id)
        if len(kids) > 1 and (self._orders[kids[-2]].created_at, kids[-2]) > (order.created_at, order.id):
            kids.sort(key=lambda i: (self._orders[i].created_at, i))
        if key in self._expanded:
            try:
                at = self._rows.index(key) + 1 + kids.index(order.id)
            except ValueError:  # the parent is not shown under this filter
                return
            self._rows.insert(at, order.id)
            if at <= self.cursor:
                self.cursor += 1

    def _sort_key(self, key: str) -> tuple[object, str]:
        """Rows are newest first by creation; a child row sorts with its parent."""
        parent = self._parents.get(key)
        if parent is not None:
            return (parent.created_at, key)
        order = self._orders[key]
        if order.tag in self._parents:
            return self._sort_key(order.tag)  # type: ignore[arg-type]
        return (order.created_at, key)

    def _position(self, rows: list[str], key: str) -> int:
        """Where ``key`` goes in newest-first ``rows`` (binary search)."""
        target = self._sort_key(key)
        lo, hi = 0, len(rows)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._sort_key(rows[mid]) > target:  # type: ignore[operator]
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _insert_sorted(self, rows: list[str], key: str) -> None:
        rows.insert(self._position(rows, key), key)

    def _insert_row(self, key: str) -> None:
        """Put a row back in newest-first position (an order or algorithm that re-enters the
        filter), with its children when it is an expanded parent."""
        at = self._position(self._rows, key)
        shown = [key, *self._kids[key]] if key in self._expanded else [key]
        self._rows[at:at] = shown
        if at <= self.cursor and self.cursor:
            self.cursor += len(shown)

    def _remove_row(self, key: str) -> None:
        try:
            index = self._rows.index(key)
        except ValueError:
            return
        count = 1 + (len(self._kids[key]) if key in self._expanded else 0)
        del self._rows[index : index + count]
        if self.cursor >= index + count:
            self.cursor -= count
        elif self.cursor > index:
            self.cursor = index

    def _rows_changed(self) -> None:
        self.cursor = min(self.cursor, max(len(self._rows) - 1, 0))
        cols = self.columns
        set_virtual_size(self, Size(sum(w for _, w in cols) + len(cols), len(self._rows) + 1))  # + header
        counts = self.counts
        if counts != self._counts:
            self._counts = counts
            self.post_message(OrdersFilterChanged(*counts))
        self._sync_bindings()
        self.refresh()

    def _sync_bindings(self) -> None:
        """The footer shows the algorithm keys while the cursor is on a parent row (a footer
        rebuild costs a frame: only when that changes)."""
        on_parent = self.selected_parent is not None
        if on_parent != self._on_parent:
            self._on_parent = on_parent
            self.refresh_bindings()

    def _match(self, item: Order | ParentOrder) -> bool:
        f = self.filter
        if f == "open":
            return not item.status.is_final
        if f == "history":
            return item.status.is_final
        if f == "all":
            return True
        return item.symbol == f

    def _refilter(self) -> None:
        """Recompute the rows from scratch (a filter change, or out-of-order arrivals)."""
        selected = self.selected_id
        orders, parents, expanded = self._orders, self._parents, self._expanded
        rows: list[str] = []
        for key in self._order_ids:
            parent = parents.get(key)
            if parent is None:
                if self._match(orders[key]):
                    rows.append(key)
            elif self._match(parent):
                rows.append(key)
                if key in expanded:
                    rows.extend(self._kids[key])
        self._rows = rows
        if selected is not None:
            with suppress(ValueError):
                self.cursor = self._rows.index(selected)
        self._rows_changed()

    def watch_filter(self) -> None:
        self._refilter()

    @property
    def selected_id(self) -> str | None:
        """The selected row's key: an order id, or ``algo:<id>`` on an algorithm's row."""
        if 0 <= self.cursor < len(self._rows):
            return self._rows[self.cursor]
        return None

    @property
    def selected(self) -> Order | None:
        sid = self.selected_id
        return self._orders.get(sid) if sid else None

    @property
    def selected_parent(self) -> ParentOrder | None:
        sid = self.selected_id
        return self._parents.get(sid) if sid else None

    @property
    def row_count(self) -> int:
        return len(self._rows)

    @property
    def counts(self) -> tuple[str, int, int]:
        """(filter, rows shown, orders tracked): what the pane's title says. An algorithm counts
        as one entry, its children (shown under it or not) as none."""
        child_rows = sum(len(self._kids[k]) for k in self._expanded if self._match(self._parents[k]))
        return self.filter, len(self._rows) - child_rows, len(self._order_ids)

    def order(self, order_id: str) -> Order | None:
        return self._orders.get(order_id)

    def forget(self, order_ids: list[str]) -> None:
        """Drop orders the desk stopped tracking (ignored external orders) from every filter."""
        gone = {i for i in order_ids if self._orders.pop(i, None) is not None}
        if gone:
            self._order_ids = [i for i in self._order_ids if i not in gone]
            self._refilter()

    def algo(self, algo_id: str) -> ParentOrder | None:
        return self._parents.get(f"{TAG_PREFIX}{algo_id}")

    def is_expanded(self, algo_id: str) -> bool:
        return f"{TAG_PREFIX}{algo_id}" in self._expanded

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
        row = self._rows[index]
        selected = index == self.cursor and self.has_focus
        parent = self._parents.get(row)
        if parent is not None:
            marker = _EXPANDED if row in self._expanded else _COLLAPSED
            key = _Key(row, parent.revision, width, selected, marker)
            strip = self._cache.get(key)
            if strip is None:
                strip = self._cache[key] = self._render_parent(parent, marker, selected, scroll_x + width)
            return strip.crop(scroll_x, scroll_x + width)
        order = self._orders[row]
        key = _Key(order.id, order.revision, width, selected, "child" if order.tag in self._parents else "")
        strip = self._cache.get(key)
        if strip is None:
            strip = self._cache[key] = self._render_order(order, key.selected, scroll_x + width, bool(key.shape))
        return strip.crop(scroll_x, scroll_x + width)

    def _render_order(self, order: Order, selected: bool, width: int, child: bool = False) -> Strip:
        style = self.get_component_rich_style
        side_style = style("orders--buy" if order.side.value == "buy" else "orders--sell", partial=True)
        status_style = style(f"orders--{_STATUS_CLASS[order.status]}", partial=True)
        price = order.price if order.price is not None else order.stop_price
        status = order.status.value + (" emu" if order.emulated else "")  # held and triggered by us
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
            "Tag": (order.tag or "", None),  # links: "bracket <id> stop-loss", "algo:<id>", "external"
        }
        row_style = style("orders--child", partial=True) if child else None
        return self._line(values, _CHILD if child else "", row_style, selected, width)

    def _render_parent(self, parent: ParentOrder, marker: str, selected: bool, width: int) -> Strip:
        style = self.get_component_rich_style
        side_style = style("orders--buy" if parent.side.value == "buy" else "orders--sell", partial=True)
        status_style = style(f"orders--{_ALGO_CLASS[parent.status]}", partial=True)
        count = len(parent.child_ids)
        status, pct = parent.status.value, progress(parent)
        room = dict(self.columns).get("Status", 16) - len(pct) - 1
        if len(status) > room:  # compact columns: the figure matters more than the word's end
            status = status[: max(room, 1)]
        values = {
            "Time": (parent.created_at.strftime("%H:%M:%S"), None),
            "Symbol": (parent.symbol, None),
            "Side": (parent.side.value, side_style),
            "Type": (_ALGO_NAME[parent.kind], None),
            "Amount": (_num(parent.amount), None),
            "Filled": (_num(parent.filled), None),
            "Price": (_num(_algo_price(parent)), None),
            "Avg fill": (_num(parent.average_price), None),
            "Status": (f"{status} {pct}", status_style),
            "Tag": (f"{parent.id} {count} order{'' if count == 1 else 's'}", None),
            "Client id": (f"{TAG_PREFIX}{parent.id}", None),
        }
        return self._line(values, marker, style("orders--algo", partial=True), selected, width)

    def _line(self, values: dict[str, tuple[str, Style | None]], marker: str, row_style: Style | None,
              selected: bool, width: int) -> Strip:
        """One row: ``marker`` (expand / child) leads the Type column, or the first one when the
        compact column set has no Type."""
        base = self.rich_style + row_style if row_style else self.rich_style
        columns = self.columns
        if marker:
            has_type = any(n == "Type" for n, _ in columns)
            name = "Type" if has_type else columns[0][0]
            text, cell_style = values[name]
            values[name] = ((marker if has_type else marker.rstrip()) + text, cell_style)
        segments = []
        for name, w in columns:
            text, cell_style = values[name]
            segments.append(Segment(text[:w].ljust(w) + " ", base + cell_style if cell_style else base))
        strip = Strip(segments)
        if selected:
            strip = strip.apply_style(self.get_component_rich_style("orders--cursor", partial=True))
        return strip.extend_cell_length(width, self.rich_style)

    def on_resize(self) -> None:
        self._cache.clear()  # the column set depends on the width
        self._refilter()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    # -- actions --------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The algorithm keys work (and show) on a parent row; modify does not apply there."""
        if action in ("toggle_algo", "pause_algo"):
            return self.selected_parent is not None
        if action == "modify_order":
            return self.selected_parent is None
        return True

    def action_cursor(self, delta: int) -> None:
        if not self._rows:
            return
        self.cursor = max(0, min(len(self._rows) - 1, self.cursor + delta))
        self.scroll_to_region_cursor()
        self._sync_bindings()
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
            self._sync_bindings()
            self.refresh()

    def action_cancel_order(self) -> None:
        parent = self.selected_parent
        if parent is not None:
            self.post_message(AlgoCancelRequested(parent.id))  # the algorithm and its open children
        elif self.selected_id:
            self.post_message(CancelRequested(self.selected_id))

    def action_modify_order(self) -> None:
        if self.selected_id and self.selected_parent is None:
            self.post_message(ModifyRequested(self.selected_id))

    def action_cancel_symbol(self) -> None:
        item = self.selected or self.selected_parent
        if item is not None:
            self.post_message(CancelSymbolRequested(item.symbol))

    def action_toggle_algo(self) -> None:
        """Expand or collapse the selected algorithm's child orders."""
        parent = self.selected_parent
        if parent is None:
            return
        key, at = parent.tag, self.cursor + 1
        kids = self._kids[key]
        if key in self._expanded:
            self._expanded.discard(key)
            del self._rows[at : at + len(kids)]
        else:
            self._expanded.add(key)
            self._rows[at:at] = kids
        self._rows_changed()

    def action_pause_algo(self) -> None:
        parent = self.selected_parent
        if parent is not None:
            self.post_message(AlgoPauseRequested(parent.id))

    def action_cycle_filter(self) -> None:
        symbols = sorted({o.symbol for o in self._orders.values()} | {p.symbol for p in self._parents.values()})
        cycle = [*FILTERS, *symbols]
        try:
            self.filter = cycle[(cycle.index(self.filter) + 1) % len(cycle)]
        except ValueError:
            self.filter = "open"
