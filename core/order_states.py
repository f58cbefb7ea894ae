"""The one order state table.

Modelled on NautilusTrader's ``_ORDER_STATE_TABLE``: every legal edge is listed, anything else
raises ``InvalidOrderTransition``. It includes the real-world edges: a fill landing while a
cancel is in flight, a cancel that fails and leaves the order open, a fill reported after the
venue already said cancelled or expired, and an order whose submit answer was lost
(``unresolved``) being settled by a lookup.

Venue reports are applied through ``settle_reported`` which absorbs duplicates and stale reports
(an "open" report arriving after we already saw "partially_filled", say) instead of raising:
venues deliver late and twice, and neither may double-count or rewind an order.
"""

from __future__ import annotations

from core.models import OrderStatus as S

TRANSITIONS: dict[S, frozenset[S]] = {
    S.NEW: frozenset({S.SUBMITTING, S.REJECTED, S.CANCELLED, S.FAILED}),
    S.SUBMITTING: frozenset(
        {S.OPEN, S.PARTIALLY_FILLED, S.FILLED, S.REJECTED, S.UNRESOLVED, S.CANCELLED, S.EXPIRED, S.FAILED, S.TRIGGERED}
    ),
    # The answer to a submit was lost: only a lookup by client order id moves it on.
    S.UNRESOLVED: frozenset(
        {S.OPEN, S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED, S.FAILED, S.TRIGGERED}
    ),
    S.OPEN: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELLING, S.CANCELLED, S.EXPIRED, S.TRIGGERED}),
    # A stop or take-profit whose trigger price was reached: now working as a market/limit order.
    S.TRIGGERED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELLING, S.CANCELLED, S.EXPIRED, S.REJECTED}),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELLING, S.CANCELLED, S.EXPIRED}),
    S.CANCELLING: frozenset(
        {
            S.CANCELLED,
            S.OPEN,  # cancel refused by the venue: the order still works
            S.PARTIALLY_FILLED,  # cancel refused after a partial fill
            S.TRIGGERED,  # cancel refused on a triggered stop
            S.FILLED,  # filled before the cancel landed
            S.EXPIRED,
        }
    ),
    # Final states. A venue may report a fill after it reported cancelled/expired (the fill
    # happened first, its report came later): the fill is booked and may complete the order.
    S.CANCELLED: frozenset({S.FILLED}),
    S.EXPIRED: frozenset({S.FILLED}),
    S.FILLED: frozenset(),
    S.REJECTED: frozenset(),
    S.FAILED: frozenset(),
}

# How far along its life a status is; used only to recognise stale venue reports.
_PROGRESS: dict[S, int] = {
    S.NEW: 0,
    S.SUBMITTING: 1,
    S.UNRESOLVED: 2,  # past submitting: a late "submitting" echo is stale
    S.OPEN: 3,
    S.TRIGGERED: 4,
    S.PARTIALLY_FILLED: 5,
    S.CANCELLING: 6,
    S.FILLED: 9,
    S.CANCELLED: 9,
    S.REJECTED: 9,
    S.EXPIRED: 9,
    S.FAILED: 9,
}


class InvalidOrderTransition(Exception):
    def __init__(self, order_id: str, current: S, target: S) -> None:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "nothing (final)"
        super().__init__(
            f"order {order_id}: illegal transition {current.value} -> {target.value} (allowed from {current.value}: {allowed})"
        )
        self.order_id = order_id
        self.current = current
        self.target = target


def can_transition(current: S, target: S) -> bool:
    return target in TRANSITIONS[current]


def check_transition(order_id: str, current: S, target: S) -> S:
    """Return ``target`` if the edge is legal, else raise ``InvalidOrderTransition``."""
    if target not in TRANSITIONS[current]:
        raise InvalidOrderTransition(order_id, current, target)
    return target


def settle_reported(order_id: str, current: S, reported: S) -> S | None:
    """Decide what a venue-reported status does to an order in ``current``.

    Returns the new status, or ``None`` when the report is a duplicate or stale and must be
    absorbed. A report that is neither stale nor legal is a real inconsistency and raises.
    """
    if reported is current and current is not S.PARTIALLY_FILLED:
        return None
    if current is S.CANCELLING and reported in (S.OPEN, S.PARTIALLY_FILLED, S.TRIGGERED):
        return None  # the cancel is in flight: only its own answer may say it failed
    if reported in TRANSITIONS[current]:
        return reported
    if current.is_final:
        return None  # late report for an order we already closed (its fills are booked apart)
    if _PROGRESS[reported] < _PROGRESS[current]:
        return None  # e.g. "open" arriving after "partially_filled", or while a cancel is in flight
    raise InvalidOrderTransition(order_id, current, reported)


def status_after_fill(current: S, filled_total_reached: bool) -> S:
    """The status an order moves to once a new fill is booked."""
    if filled_total_reached:
        return S.FILLED
    if current in (S.CANCELLING, S.CANCELLED, S.EXPIRED):
        return current  # partial fill while cancelling, or a late partial after the close
    return S.PARTIALLY_FILLED
