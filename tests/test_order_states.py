"""Tests of the one order state table (core.order_states)."""

from __future__ import annotations

import itertools

import pytest

from core.models import OrderStatus as S
from core.order_states import (
    TRANSITIONS,
    InvalidOrderTransition,
    can_transition,
    check_transition,
    settle_reported,
    status_after_fill,
)

ALL = list(S)
EDGES = sorted((a, b) for a, targets in TRANSITIONS.items() for b in targets)
NON_EDGES = sorted((a, b) for a, b in itertools.product(ALL, ALL) if b not in TRANSITIONS.get(a, frozenset()))


def _ids(pairs):
    return [f"{a.value}->{b.value}" for a, b in pairs]


# -- the table itself ------------------------------------------------------------------------


def test_table_covers_every_status_and_only_statuses():
    assert set(TRANSITIONS) == set(S)
    for targets in TRANSITIONS.values():
        assert all(isinstance(t, S) for t in targets)


def test_edge_and_non_edge_sets_partition_all_pairs():
    # guards the parametrisation below: together they must be all 12 x 12 pairs
    assert len(ALL) == 12
    assert len(EDGES) + len(NON_EDGES) == len(ALL) ** 2
    assert not set(EDGES) & set(NON_EDGES)
    assert EDGES and NON_EDGES


@pytest.mark.parametrize(("current", "target"), EDGES, ids=_ids(EDGES))
def test_every_listed_edge_is_accepted(current, target):
    assert check_transition("o-1", current, target) is target
    assert can_transition(current, target)


@pytest.mark.parametrize(("current", "target"), NON_EDGES, ids=_ids(NON_EDGES))
def test_every_unlisted_pair_is_refused_naming_both_states(current, target):
    assert not can_transition(current, target)
    with pytest.raises(InvalidOrderTransition) as info:
        check_transition("o-42", current, target)
    exc = info.value
    msg = str(exc)
    assert f"{current.value} -> {target.value}" in msg
    assert "o-42" in msg
    assert exc.order_id == "o-42"
    assert exc.current is current
    assert exc.target is target


def test_refusal_message_lists_the_allowed_targets():
    with pytest.raises(InvalidOrderTransition) as info:
        check_transition("o-1", S.NEW, S.OPEN)
    msg = str(info.value)
    assert "allowed from new: cancelled, failed, rejected, submitting" in msg


@pytest.mark.parametrize("final", [S.FILLED, S.REJECTED, S.FAILED])
def test_refusal_message_for_a_dead_end_state_says_final(final):
    with pytest.raises(InvalidOrderTransition, match=r"nothing \(final\)"):
        check_transition("o-1", final, S.OPEN)


# -- named real-world edges ------------------------------------------------------------------

NAMED_EDGES = [
    # the happy path
    (S.NEW, S.SUBMITTING),
    (S.SUBMITTING, S.OPEN),
    (S.OPEN, S.PARTIALLY_FILLED),
    (S.PARTIALLY_FILLED, S.PARTIALLY_FILLED),  # a further partial fill
    (S.PARTIALLY_FILLED, S.FILLED),
    (S.OPEN, S.FILLED),
    # cancel round trip
    (S.OPEN, S.CANCELLING),
    (S.PARTIALLY_FILLED, S.CANCELLING),
    (S.TRIGGERED, S.CANCELLING),
    (S.CANCELLING, S.CANCELLED),
    # the cancel failed: the order still works
    (S.CANCELLING, S.OPEN),
    (S.CANCELLING, S.PARTIALLY_FILLED),
    (S.CANCELLING, S.TRIGGERED),
    # filled before the cancel landed
    (S.CANCELLING, S.FILLED),
    # submit outcomes
    (S.SUBMITTING, S.REJECTED),
    (S.SUBMITTING, S.UNRESOLVED),
    (S.SUBMITTING, S.FAILED),
    (S.NEW, S.REJECTED),
    # an unresolved submit settled by a lookup
    (S.UNRESOLVED, S.OPEN),
    (S.UNRESOLVED, S.FILLED),
    (S.UNRESOLVED, S.FAILED),
    (S.UNRESOLVED, S.PARTIALLY_FILLED),
    (S.UNRESOLVED, S.REJECTED),
    # stop / take-profit trigger
    (S.OPEN, S.TRIGGERED),
    (S.TRIGGERED, S.FILLED),
    (S.TRIGGERED, S.PARTIALLY_FILLED),
    # expiry from live states
    (S.SUBMITTING, S.EXPIRED),
    (S.UNRESOLVED, S.EXPIRED),
    (S.OPEN, S.EXPIRED),
    (S.TRIGGERED, S.EXPIRED),
    (S.PARTIALLY_FILLED, S.EXPIRED),
    (S.CANCELLING, S.EXPIRED),
    # a fill reported after the venue said cancelled / expired
    (S.CANCELLED, S.FILLED),
    (S.EXPIRED, S.FILLED),
]


def test_named_real_world_edges_exist():
    missing = [f"{a.value}->{b.value}" for a, b in NAMED_EDGES if not can_transition(a, b)]
    assert missing == []
    for a, b in NAMED_EDGES:
        assert check_transition("o-1", a, b) is b


def test_full_happy_path_walks_through_check_transition():
    path = [S.NEW, S.SUBMITTING, S.OPEN, S.PARTIALLY_FILLED, S.FILLED]
    status = path[0]
    for nxt in path[1:]:
        status = check_transition("o-1", status, nxt)
    assert status is S.FILLED


# Edges that must NOT exist: rewinding an order or skipping the submit.
FORBIDDEN_EDGES = [
    (S.NEW, S.OPEN),  # must go through submitting
    (S.NEW, S.FILLED),
    (S.NEW, S.PARTIALLY_FILLED),
    (S.OPEN, S.NEW),
    (S.OPEN, S.SUBMITTING),
    (S.OPEN, S.UNRESOLVED),
    (S.OPEN, S.OPEN),
    (S.PARTIALLY_FILLED, S.OPEN),  # filled amount never rewinds
    (S.PARTIALLY_FILLED, S.TRIGGERED),
    (S.CANCELLED, S.OPEN),
    (S.CANCELLED, S.PARTIALLY_FILLED),  # a late partial leaves it cancelled
    (S.CANCELLED, S.CANCELLED),
    (S.EXPIRED, S.OPEN),
    (S.FILLED, S.PARTIALLY_FILLED),
    (S.FILLED, S.CANCELLED),
]


def test_rewinding_or_skipping_edges_are_absent():
    present = [f"{a.value}->{b.value}" for a, b in FORBIDDEN_EDGES if b in TRANSITIONS[a]]
    assert present == []
    for a, b in FORBIDDEN_EDGES:
        with pytest.raises(InvalidOrderTransition):
            check_transition("o-1", a, b)


# -- final states ----------------------------------------------------------------------------


@pytest.mark.parametrize("final", [S.FILLED, S.REJECTED, S.FAILED])
def test_dead_end_final_states_have_no_outgoing_edges(final):
    assert final.is_final
    assert TRANSITIONS[final] == frozenset()
    for target in S:
        assert not can_transition(final, target)


@pytest.mark.parametrize("final", [S.CANCELLED, S.EXPIRED])
def test_cancelled_and_expired_only_accept_a_late_fill(final):
    assert final.is_final
    assert TRANSITIONS[final] == frozenset({S.FILLED})


def test_every_live_state_can_reach_a_final_state_and_every_state_is_reachable_from_new():
    def reachable(start):
        seen, todo = {start}, [start]
        while todo:
            for nxt in TRANSITIONS[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    assert reachable(S.NEW) == set(S)
    for status in S:
        if status.is_live:
            assert any(s.is_final for s in reachable(status)), status


# -- settle_reported -------------------------------------------------------------------------


def test_settle_duplicate_report_is_absorbed():
    for status in S:
        if status is not S.PARTIALLY_FILLED:
            assert settle_reported("o-1", status, status) is None, status


def test_settle_repeated_partially_filled_passes_through():
    # a second partial fill is news, not a duplicate
    assert settle_reported("o-1", S.PARTIALLY_FILLED, S.PARTIALLY_FILLED) is S.PARTIALLY_FILLED


STALE = [
    (S.PARTIALLY_FILLED, S.OPEN),
    (S.PARTIALLY_FILLED, S.TRIGGERED),
    (S.PARTIALLY_FILLED, S.SUBMITTING),
    (S.TRIGGERED, S.OPEN),
    (S.OPEN, S.SUBMITTING),
    (S.OPEN, S.NEW),
    # a cancel is in flight: only its own answer may say it failed
    (S.CANCELLING, S.OPEN),
    (S.CANCELLING, S.PARTIALLY_FILLED),
    (S.CANCELLING, S.TRIGGERED),
    (S.CANCELLING, S.SUBMITTING),
    # "unresolved" is our own state; a report of it on an open order is older than what we know
    (S.OPEN, S.UNRESOLVED),
]


@pytest.mark.parametrize(("current", "reported"), STALE, ids=_ids(STALE))
def test_settle_stale_report_is_absorbed(current, reported):
    assert settle_reported("o-1", current, reported) is None


def test_cancelling_absorbs_open_even_though_the_table_allows_it():
    # CANCELLING -> OPEN is a legal edge (for the cancel's own answer), but a venue report of
    # "open" while the cancel is in flight must not undo the cancel.
    assert S.OPEN in TRANSITIONS[S.CANCELLING]
    assert settle_reported("o-1", S.CANCELLING, S.OPEN) is None


LATE_FOR_FINAL = [
    (S.FILLED, S.OPEN),
    (S.FILLED, S.PARTIALLY_FILLED),
    (S.FILLED, S.CANCELLED),
    (S.CANCELLED, S.OPEN),
    (S.CANCELLED, S.PARTIALLY_FILLED),
    (S.CANCELLED, S.EXPIRED),
    (S.EXPIRED, S.CANCELLED),
    (S.REJECTED, S.OPEN),
    (S.REJECTED, S.FILLED),
    (S.FAILED, S.OPEN),
    (S.FAILED, S.FILLED),
]


@pytest.mark.parametrize(("current", "reported"), LATE_FOR_FINAL, ids=_ids(LATE_FOR_FINAL))
def test_settle_late_report_for_a_final_order_is_absorbed(current, reported):
    assert settle_reported("o-1", current, reported) is None


FORWARD = [
    (S.SUBMITTING, S.OPEN),
    (S.SUBMITTING, S.REJECTED),
    (S.UNRESOLVED, S.OPEN),
    (S.UNRESOLVED, S.FILLED),
    (S.OPEN, S.PARTIALLY_FILLED),
    (S.OPEN, S.FILLED),
    (S.OPEN, S.TRIGGERED),
    (S.OPEN, S.CANCELLED),
    (S.OPEN, S.EXPIRED),
    (S.TRIGGERED, S.FILLED),
    (S.PARTIALLY_FILLED, S.FILLED),
    (S.PARTIALLY_FILLED, S.CANCELLED),
    (S.CANCELLING, S.CANCELLED),
    (S.CANCELLING, S.FILLED),
    (S.CANCELLING, S.EXPIRED),
    (S.CANCELLED, S.FILLED),  # late fill after the cancel
    (S.EXPIRED, S.FILLED),
]


@pytest.mark.parametrize(("current", "reported"), FORWARD, ids=_ids(FORWARD))
def test_settle_legal_forward_report_returns_the_new_status(current, reported):
    assert settle_reported("o-1", current, reported) is reported


IMPOSSIBLE = [
    (S.OPEN, S.REJECTED),  # a working order cannot be rejected
    (S.OPEN, S.FAILED),
    (S.PARTIALLY_FILLED, S.REJECTED),
    (S.CANCELLING, S.REJECTED),
    (S.TRIGGERED, S.FAILED),
    (S.NEW, S.OPEN),  # never submitted, yet reported open
    (S.NEW, S.FILLED),
    (S.SUBMITTING, S.CANCELLING),
]


@pytest.mark.parametrize(("current", "reported"), IMPOSSIBLE, ids=_ids(IMPOSSIBLE))
def test_settle_impossible_forward_report_raises(current, reported):
    with pytest.raises(InvalidOrderTransition) as info:
        settle_reported("o-7", current, reported)
    assert info.value.current is current
    assert info.value.target is reported
    assert f"{current.value} -> {reported.value}" in str(info.value)


def test_settle_never_returns_an_illegal_edge_and_never_raises_for_a_final_order():
    for current, reported in itertools.product(S, S):
        try:
            result = settle_reported("o-1", current, reported)
        except InvalidOrderTransition:
            assert not current.is_final, (current, reported)
            assert reported not in TRANSITIONS[current], (current, reported)
            continue
        if result is not None:
            assert result is reported, (current, reported)
            assert reported in TRANSITIONS[current], (current, reported)


# -- status_after_fill -----------------------------------------------------------------------


def test_full_fill_is_filled_from_any_state():
    for current in S:
        assert status_after_fill(current, True) is S.FILLED, current


@pytest.mark.parametrize(
    "current", [S.OPEN, S.SUBMITTING, S.UNRESOLVED, S.TRIGGERED, S.PARTIALLY_FILLED], ids=lambda s: s.value
)
def test_partial_fill_on_a_working_order_is_partially_filled(current):
    assert status_after_fill(current, False) is S.PARTIALLY_FILLED


def test_partial_fill_while_cancelling_stays_cancelling():
    assert status_after_fill(S.CANCELLING, False) is S.CANCELLING


@pytest.mark.parametrize("current", [S.CANCELLED, S.EXPIRED], ids=lambda s: s.value)
def test_late_partial_fill_after_close_keeps_the_status(current):
    assert status_after_fill(current, False) is current


def test_status_after_fill_only_moves_along_legal_edges():
    # the states in which the engine books a fill and then calls check_transition
    for current in (S.SUBMITTING, S.UNRESOLVED, S.OPEN, S.TRIGGERED, S.PARTIALLY_FILLED, S.CANCELLING, S.CANCELLED, S.EXPIRED):
        for complete in (True, False):
            new = status_after_fill(current, complete)
            assert new is current or check_transition("o-1", current, new) is new
