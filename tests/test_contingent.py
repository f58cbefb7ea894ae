"""Contingent orders on the simulated venue: brackets (market and limit entry, partial fills,
restart), OCO (a fill racing the sibling's cancel), trailing stops on scripted prices,
update_stop_loss / update_take_profit, and the halt."""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path

import pytest

from core import Engine, EngineError, ManualClock, Order, OrderRequest, OrderStatus, OrderType
from core.errors import OrderRejected, VenueTimeout, VenueUnavailable
from core.events import Notice
from core.models import TradingState

from .conftest import paper

BTC = "BTC/USDT"
S = OrderStatus


def script(engine: Engine, *prices: str, symbol: str = BTC) -> None:
    engine.venue.market.script(symbol, prices)  # type: ignore[attr-defined]


def order(engine: Engine, order_id: str) -> Order:
    return engine._orders[order_id]


def leg(engine: Engine, contingent_id: str, role: str) -> Order:
    """The working order of a leg."""
    c = engine.get_contingent(contingent_id)
    assert c is not None and c.legs[role].orders, f"{role} of {contingent_id} has no order"
    return order(engine, c.legs[role].orders[-1])


def position(engine: Engine, symbol: str = BTC) -> D:
    return engine.ledger.signed_size(symbol)


async def kinds(engine: Engine, order_id: str | None = None) -> list[str]:
    return [e["kind"] for e in await engine.journal.events(order_id=order_id)]  # type: ignore[union-attr]


async def never_react(c: object) -> bool:
    """Stands in for the manager's step: the engine 'dies' before it reacts."""
    return False


async def never_write(*args: object, **kw: object) -> None:
    """Stands in for the manager's journal writes: the engine 'dies' before they are made."""


# -- brackets -----------------------------------------------------------------------------------


async def test_market_bracket_take_profit_fills_and_cancels_the_stop_loss(engine: Engine) -> None:
    b = await engine.place_bracket_order(BTC, "buy", D("0.2"), stop_loss=D("50500"), take_profit=D("51500"))
    entry = order(engine, b.legs["entry"].orders[0])
    assert (entry.status, entry.filled, entry.tag) == (S.FILLED, D("0.2"), f"bracket {b.id} entry")
    sl, tp = leg(engine, b.id, "stop_loss"), leg(engine, b.id, "take_profit")
    assert (sl.type, sl.side.value, sl.stop_price, sl.amount, sl.reduce_only) == (OrderType.STOP, "sell", D("50500"), D("0.2"), True)
    assert (tp.type, tp.stop_price, tp.amount, tp.reduce_only) == (OrderType.TAKE_PROFIT, D("51500"), D("0.2"), True)

    script(engine, "51600")
    await engine.tick()
    assert (tp.status, tp.filled) == (S.FILLED, D("0.2"))
    assert sl.status is S.CANCELLED
    assert position(engine) == 0
    done = engine.get_contingent(b.id)
    assert done is not None and done.done == "position closed by its exit legs"
    journal = await kinds(engine)
    assert journal.index("bracket_created") < journal.index("order_created")  # the link is durable first
    assert journal.count("leg_placed") == 3 and journal[-1] == "contingent_done"
    state = json.loads((await engine.journal.load()).state[f"contingent:{b.id}"])  # type: ignore[union-attr]
    assert state["done"] == "position closed by its exit legs"


@pytest.mark.parametrize("can_amend", [True, False], ids=["amend", "cancel-replace"])
async def test_limit_bracket_legs_follow_partial_entry_fills(engine: Engine, can_amend: bool) -> None:
    engine.venue.can_amend = can_amend  # type: ignore[misc]
    b = await engine.place_bracket_order(BTC, "buy", D("0.5"), entry=D("50990"), stop_loss=D("50500"),
                                         take_profit=D("51500"))
    entry = order(engine, b.legs["entry"].orders[0])
    assert entry.status is S.OPEN and b.legs["stop_loss"].orders == [] and b.legs["take_profit"].orders == []

    script(engine, "50989.9")  # the ask touches 50990: one level, 0.25 of the 0.5
    await engine.tick()
    assert (entry.status, entry.filled) == (S.PARTIALLY_FILLED, D("0.25"))
    assert leg(engine, b.id, "stop_loss").remaining == D("0.25")
    assert leg(engine, b.id, "take_profit").remaining == D("0.25")

    script(engine, "50980")
    await engine.tick()
    assert (entry.status, entry.filled) == (S.FILLED, D("0.5"))
    sl, tp = leg(engine, b.id, "stop_loss"), leg(engine, b.id, "take_profit")
    assert (sl.remaining, tp.remaining) == (D("0.5"), D("0.5"))
    served = engine.get_contingent(b.id).legs["stop_loss"].orders  # type: ignore[union-attr]
    if can_amend:
        assert len(served) == 1
    else:  # replaced: the old one is cancelled, the new one carries the same tag
        assert len(served) == 2 and order(engine, served[0]).status is S.CANCELLED and sl.tag == f"bracket {b.id} stop-loss"
    assert engine.venue.open_order_count() == 2  # type: ignore[attr-defined]

    script(engine, "50400")
    await engine.tick()
    assert (sl.status, sl.filled) == (S.FILLED, D("0.5"))
    assert tp.status is S.CANCELLED
    assert position(engine) == 0
    assert engine.get_contingent(b.id).done == "position closed by its exit legs"  # type: ignore[union-attr]


async def test_cancelled_entry_with_no_fill_drops_the_legs(engine: Engine) -> None:
    b = await engine.place_bracket_order(BTC, "buy", D("0.5"), entry=D("50990"), stop_loss=D("50500"),
                                         take_profit=D("51500"))
    entry_id = b.legs["entry"].orders[0]
    await engine.cancel_order(entry_id)
    assert engine.get_contingent(b.id).done == "entry cancelled with no fill: legs dropped"  # type: ignore[union-attr]
    script(engine, "50900")
    await engine.tick()
    assert [o.id for o in await engine.get_orders()] == [entry_id]  # no leg was ever placed


async def test_entry_cancelled_after_a_partial_fill_keeps_legs_for_what_filled(engine: Engine) -> None:
    b = await engine.place_bracket_order(BTC, "buy", D("0.5"), entry=D("50990"), stop_loss=D("50500"),
                                         take_profit=D("51500"))
    script(engine, "50989.9")
    await engine.tick()
    await engine.cancel_order(b.legs["entry"].orders[0])
    sl, tp = leg(engine, b.id, "stop_loss"), leg(engine, b.id, "take_profit")
    assert (sl.status, sl.remaining, tp.status, tp.remaining) == (S.OPEN, D("0.25"), S.OPEN, D("0.25"))
    script(engine, "51600")
    await engine.tick()
    assert (tp.status, sl.status, position(engine)) == (S.FILLED, S.CANCELLED, 0)
    assert engine.get_contingent(b.id).done == "position closed by its exit legs"  # type: ignore[union-attr]


async def test_bracket_keeps_working_across_a_restart(db: Path, clock: ManualClock) -> None:
    async with paper(db, clock) as engine:
        b = await engine.place_bracket_order(BTC, "buy", D("0.5"), entry=D("50990"), stop_loss=D("50500"),
                                             take_profit=D("51500"))
        script(engine, "50989.9")
        await engine.tick()
        assert leg(engine, b.id, "take_profit").remaining == D("0.25")
    async with paper(db, clock) as engine:
        restored = engine.get_contingent(b.id)
        assert restored is not None and restored.done is None
        entry = order(engine, restored.legs["entry"].orders[0])
        script(engine, "50980")  # the entry fills the rest after the restart: the legs follow
        await engine.tick()
        assert entry.status is S.FILLED
        sl, tp = leg(engine, b.id, "stop_loss"), leg(engine, b.id, "take_profit")
        assert (sl.remaining, tp.remaining) == (D("0.5"), D("0.5"))
        script(engine, "51600")
        await engine.tick()
        assert (tp.status, sl.status, position(engine)) == (S.FILLED, S.CANCELLED, 0)
        assert engine.get_contingent(b.id).done == "position closed by its exit legs"  # type: ignore[union-attr]


async def test_restart_catches_up_on_what_happened_while_down(db: Path, clock: ManualClock) -> None:
    async with paper(db, clock) as engine:
        engine._contingent._step = never_react  # type: ignore[method-assign]
        b = await engine.place_bracket_order(BTC, "buy", D("0.2"), stop_loss=D("50500"), take_profit=D("51500"))
        assert order(engine, b.legs["entry"].orders[0]).status is S.FILLED
        assert engine.get_contingent(b.id).legs["stop_loss"].orders == []  # type: ignore[union-attr]
    async with paper(db, clock) as engine:
        # the entry had filled: its legs are placed at start, sized to it
        sl, tp = leg(engine, b.id, "stop_loss"), leg(engine, b.id, "take_profit")
        assert (sl.status, sl.amount, tp.status, tp.amount) == (S.OPEN, D("0.2"), S.OPEN, D("0.2"))
        engine._contingent._step = never_react  # type: ignore[method-assign]
        script(engine, "51600")
        await engine.tick()
        assert tp.status is S.FILLED and order(engine, sl.id).status is S.OPEN
    async with paper(db, clock) as engine:
        # the take-profit had filled: the stop-loss is cancelled at start
        assert order(engine, sl.id).status is S.CANCELLED
        assert engine.venue.open_order_count() == 0  # type: ignore[attr-defined]
        assert position(engine) == 0
        assert engine.get_contingent(b.id).done == "position closed by its exit legs"  # type: ignore[union-attr]


# -- OCO ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("held", "overfill"), [("0.3", None), ("0.5", "0.2")])
async def test_oco_fill_racing_the_cancel_never_flips_and_reports_overfill(
    engine: Engine, held: str, overfill: str | None
) -> None:
    await engine.place_market_order(BTC, "buy", D(held))
    oco = await engine.place_oco_order(BTC, "sell", D("0.3"), price=D("51100"), stop_price=D("50900"))
    limit, stop = leg(engine, oco.id, "limit"), leg(engine, oco.id, "stop")
    assert (limit.status, stop.status, limit.reduce_only, stop.reduce_only) == (S.OPEN, S.OPEN, True, True)
    venue = engine.venue
    real_cancel = venue.cancel

    async def late_cancel(o: Order):  # noqa: ANN202
        # the stop triggers at the venue while the cancel is on its way: both legs fill
        venue.market.script(BTC, ["50800"])  # type: ignore[attr-defined]
        await venue.poll()
        return await real_cancel(o)

    venue.cancel = late_cancel  # type: ignore[method-assign]
    stream = engine.events()
    script(engine, "51200")
    await engine.tick()
    assert (limit.status, limit.filled, limit.average_price) == (S.FILLED, D("0.3"), D("51100"))
    assert stop.status is S.CANCELLED and stop.filled == D(held) - D("0.3")  # the venue capped it at the position
    assert position(engine) == 0 and venue.ledger.signed_size(BTC) == 0  # type: ignore[attr-defined]
    reported = [e for e in stream.drain() if isinstance(e, Notice) and "more than they protect" in e.text]
    overfills = [e["data"] for e in await engine.journal.events() if e["kind"] == "contingent_overfill"]  # type: ignore[union-attr]
    if overfill is None:
        assert reported == [] and overfills == []
    else:
        assert [n.data["overfill"] for n in reported] == [D(overfill)]
        assert [(d["contingent"], d["overfill"], d["position"]) for d in overfills] == [(oco.id, overfill, "0")]
    assert engine.get_contingent(oco.id).done is not None  # type: ignore[union-attr]


async def test_oco_order_cancelled_by_the_trader_cancels_its_sibling(engine: Engine) -> None:
    await engine.place_market_order(BTC, "buy", D("0.3"))
    oco = await engine.place_oco_order(BTC, "sell", D("0.3"), price=D("51100"), stop_price=D("50900"))
    stop = await engine.cancel_order(leg(engine, oco.id, "stop").id)
    assert leg(engine, oco.id, "limit").status is S.CANCELLED
    assert engine.get_contingent(oco.id).done == f"{stop.id} cancelled: the other was cancelled"  # type: ignore[union-attr]


# -- trailing stops -----------------------------------------------------------------------------


async def test_trailing_stop_follows_the_best_price_and_fires_on_the_retrace(engine: Engine) -> None:
    await engine.place_market_order(BTC, "buy", D("0.1"))
    ts = await engine.place_trailing_stop(BTC, "sell", D("0.1"), trail_amount=D("100"))
    assert (ts.emulated, ts.status, ts.stop_price, ts.reduce_only) == (True, S.OPEN, D("50900"), True)  # 51000 - 100
    assert engine.venue.open_order_count() == 0  # type: ignore[attr-defined]  # held in the core
    held = order(engine, ts.id)
    script(engine, "51050", "51200", "51150", "51100.1")
    for trigger in ("50950", "51100", "51100", "51100"):
        await engine.tick()
        assert (held.status, held.stop_price) == (S.OPEN, D(trigger))
    script(engine, "51100")  # back to the trigger: it fires
    await engine.tick()
    cid = (ts.tag or "").split()[1]
    exit_order = leg(engine, cid, "exit")
    assert (exit_order.type, exit_order.reduce_only, exit_order.status) == (OrderType.MARKET, True, S.FILLED)
    assert exit_order.average_price == D("51099.9")  # the bid under a last of 51100
    assert (held.status, held.stop_price, held.filled) == (S.FILLED, D("51100"), D("0.1"))
    assert position(engine) == 0
    assert await kinds(engine, ts.id) == [
        "trailing_created", "trailing_moved", "trailing_moved", "trailing_triggered", "order_filled",
    ]


async def test_trailing_stop_with_activation_and_percent_survives_a_restart(db: Path, clock: ManualClock) -> None:
    async with paper(db, clock) as engine:
        await engine.place_market_order(BTC, "sell", D("0.1"))  # short: a buy trailing stop protects it
        ts = await engine.place_trailing_stop(BTC, "buy", D("0.1"), trail_percent=D("0.5"), activation_price=D("50800"))
        held = order(engine, ts.id)
        assert ts.stop_price is None  # 51000 has not reached the activation price
        script(engine, "50900", "50700", "50600")
        for trigger in (None, D("50953.5"), D("50853.0")):  # 0.5% above the best price since activation
            await engine.tick()
            assert held.stop_price == trigger
    async with paper(db, clock) as engine:
        held = order(engine, ts.id)
        assert (held.status, held.emulated, held.stop_price) == (S.OPEN, True, D("50853.0"))
        assert engine.venue.open_order_count() == 0  # type: ignore[attr-defined]  # restored in the core only
        script(engine, "50850")
        await engine.tick()
        assert held.status is S.OPEN and position(engine) == D("-0.1")
        script(engine, "50853")
        await engine.tick()
        assert held.status is S.FILLED and position(engine) == 0


async def test_trailing_stop_is_cancelled_in_the_core(engine: Engine) -> None:
    await engine.place_market_order(BTC, "buy", D("0.2"))
    one = await engine.place_trailing_stop(BTC, "sell", D("0.1"), trail_amount=D("100"))
    two = await engine.place_trailing_stop(BTC, "sell", D("0.1"), trail_percent=D("1"))
    requests = engine.venue.requests  # type: ignore[attr-defined]
    assert (await engine.cancel_order(one.id)).status is S.CANCELLED
    assert [o.id for o in await engine.cancel_all_orders()] == [two.id]
    assert engine.venue.requests == requests  # type: ignore[attr-defined]  # no venue was asked
    assert await engine.get_active_orders() == []
    with pytest.raises(EngineError, match="held in the core"):
        await engine.modify_order((await engine.place_trailing_stop(BTC, "sell", D("0.1"), trail_amount=D("5"))).id,
                                  amount=D("0.2"))


# -- update_stop_loss / update_take_profit ------------------------------------------------------


async def test_update_stop_loss_and_take_profit_of_a_position(engine: Engine) -> None:
    with pytest.raises(EngineError, match="no open BTC/USDT position on paper: there is no stop-loss to update"):
        await engine.update_stop_loss(BTC, D("50500"))
    _, sl, _ = await engine.place_with_protection(
        OrderRequest(symbol=BTC, side="buy", amount=D("0.2")), stop_loss=D("50500"), take_profit=D("51500"))
    [moved] = await engine.update_stop_loss(BTC, D("50800"))
    assert (moved.type, moved.stop_price, moved.amount, moved.reduce_only, moved.tag) == (
        OrderType.STOP, D("50800"), D("0.2"), True, sl.tag)
    assert order(engine, sl.id).status is S.CANCELLED  # replaced, after the new one was working
    with pytest.raises(EngineError, match="stop-loss 51200 must be below the last price 51000 for a long"):
        await engine.update_stop_loss(BTC, D("51200"))
    script(engine, "50750")
    await engine.tick()
    assert order(engine, moved.id).status is S.FILLED and position(engine) == 0

    await engine.place_market_order(BTC, "sell", D("0.1"))  # short, with no take-profit yet: one is placed
    [tp] = await engine.update_take_profit(BTC, D("50000"))
    assert (tp.type, tp.side.value, tp.stop_price, tp.amount, tp.reduce_only, tp.status) == (
        OrderType.TAKE_PROFIT, "buy", D("50000"), D("0.1"), True, S.OPEN)


async def test_update_stop_loss_of_a_bracket_keeps_the_legs_linked(engine: Engine) -> None:
    b = await engine.place_bracket_order(BTC, "buy", D("0.2"), stop_loss=D("50500"), take_profit=D("51500"))
    [sl] = await engine.update_stop_loss(BTC, D("50700"))
    [tp] = await engine.update_take_profit(BTC, D("51300"))
    assert leg(engine, b.id, "stop_loss").id == sl.id and leg(engine, b.id, "take_profit").id == tp.id
    script(engine, "50650")
    await engine.tick()
    assert (order(engine, sl.id).status, order(engine, tp.id).status) == (S.FILLED, S.CANCELLED)
    assert position(engine) == 0 and engine.venue.open_order_count() == 0  # type: ignore[attr-defined]


async def test_update_stop_loss_before_the_entry_fills_moves_the_planned_leg(engine: Engine) -> None:
    b = await engine.place_bracket_order(BTC, "buy", D("0.25"), entry=D("50990"), stop_loss=D("50500"),
                                         take_profit=D("51500"))
    assert await engine.update_stop_loss(BTC, D("50600")) == []
    script(engine, "50989.9")
    await engine.tick()
    assert leg(engine, b.id, "stop_loss").stop_price == D("50600")


# -- the halt and bad requests ------------------------------------------------------------------


async def test_halt_cancels_legs_and_held_orders_and_nothing_is_placed_after(engine: Engine) -> None:
    await engine.place_bracket_order(BTC, "buy", D("0.2"), stop_loss=D("50500"), take_profit=D("51500"))
    await engine.place_bracket_order(BTC, "buy", D("0.1"), entry=D("50900"), stop_loss=D("50500"), take_profit=D("51500"))
    await engine.place_market_order("ETH/USDT", "buy", D("1"))
    await engine.place_oco_order("ETH/USDT", "sell", D("1"), price=D("3300"), stop_price=D("3100"))
    await engine.place_market_order("SOL/USDT", "buy", D("10"))
    ts = await engine.place_trailing_stop("SOL/USDT", "sell", D("10"), trail_amount=D("1"))
    live = {o.id for o in await engine.get_active_orders()}
    assert len(live) == 6

    report = await engine.halt_trading("test")
    assert report.clean, report.summary()
    assert await engine.get_active_orders() == []
    assert order(engine, ts.id).status is S.CANCELLED
    # the report names every order the halt cancelled, the trailing stop held in the core included
    assert set(report.accounts[0].cancelled) == live
    assert engine._contingent.active == {}
    placed = len(await engine.get_orders())
    script(engine, "50800", "51600")  # the resting entry would fill, then its take-profit trigger
    script(engine, "140", symbol="SOL/USDT")  # far under the trailing stop
    for _ in range(2):
        await engine.tick()
    assert len(await engine.get_orders()) == placed
    assert engine.venue.open_order_count() == 0  # type: ignore[attr-defined]


async def test_bad_requests_are_refused_with_reasons_and_nothing_is_sent(engine: Engine) -> None:
    with pytest.raises(EngineError, match="stop-loss 51500 is on the wrong side of entry 51000"):
        await engine.place_bracket_order(BTC, "buy", D("0.1"), stop_loss=D("51500"), take_profit=D("52000"))
    with pytest.raises(EngineError, match="needs a stop_loss, a take_profit or both"):
        await engine.place_bracket_order(BTC, "buy", D("0.1"), entry=D("50900"))
    with pytest.raises(EngineError, match="take_profit 51500.05 is finer than the tick size"):
        await engine.place_bracket_order(BTC, "buy", D("0.1"), stop_loss=D("50500"), take_profit=D("51500.05"))
    with pytest.raises(EngineError, match="no BTC/USDT position to reduce"):
        await engine.place_trailing_stop(BTC, "sell", D("0.1"), trail_amount=D("100"))
    with pytest.raises(EngineError, match="exactly one of trail_amount and trail_percent"):
        await engine.place_trailing_stop(BTC, "sell", D("0.1"))
    with pytest.raises(EngineError, match="floats are refused"):
        await engine.place_trailing_stop(BTC, "sell", D("0.1"), trail_amount=100.0)  # type: ignore[arg-type]
    with pytest.raises(EngineError, match="same amount, got 0.1 and 0.2"):
        await engine.place_oco(
            OrderRequest(symbol=BTC, side="sell", type="limit", amount=D("0.1"), price=D("51100")),
            OrderRequest(symbol=BTC, side="sell", type="stop", amount=D("0.2"), stop_price=D("50900")))
    assert await engine.get_orders() == []
    assert not any(k.startswith("contingent:") for k in (await engine.journal.load()).state)  # type: ignore[union-attr]


# -- review findings: gaps, lapses, retries, modify, busy manager, restarts ---------------------


async def test_stop_loss_filled_in_a_gap_covers_the_entry_fills_that_came_with_it(engine: Engine) -> None:
    b = await engine.place_bracket_order(BTC, "buy", D("0.5"), entry=D("50990"), stop_loss=D("50500"),
                                         take_profit=D("51500"))
    script(engine, "50989.9")
    await engine.tick()
    first = leg(engine, b.id, "stop_loss")
    assert first.remaining == D("0.25")
    script(engine, "50400")  # one poll: the rest of the entry fills and the stop fills its 0.25
    await engine.tick()
    assert order(engine, b.legs["entry"].orders[0]).filled == D("0.5") and first.status is S.FILLED
    rest = leg(engine, b.id, "stop_loss")  # the stop's level is passed: the rest exits as the stop would
    assert rest.id != first.id and (rest.type, rest.reduce_only, rest.status, rest.filled) == (
        OrderType.MARKET, True, S.FILLED, D("0.25"))
    assert position(engine) == 0 and engine.venue.open_order_count() == 0  # type: ignore[attr-defined]
    done = engine.get_contingent(b.id)
    assert done is not None and done.legs["stop_loss"].dropped is None
    assert done.done == "position closed by its exit legs"


async def test_legs_closed_by_the_manager_are_placed_again_when_the_entry_fills_more(engine: Engine) -> None:
    b = await engine.place_bracket_order(BTC, "buy", D("0.5"), entry=D("50990"), stop_loss=D("50500"),
                                         take_profit=D("51500"))
    entry = order(engine, b.legs["entry"].orders[0])
    venue = engine.venue
    real_cancel = venue.cancel

    async def entry_cancel_blips(o: Order):  # noqa: ANN202
        if o.id == entry.id:
            raise VenueUnavailable("502 bad gateway")  # the entry keeps working...
        return await real_cancel(o)

    venue.cancel = entry_cancel_blips  # type: ignore[method-assign]
    script(engine, "50989.9", "51600")
    await engine.tick()
    await engine.tick()  # the take-profit fills 0.25: the stop-loss is cancelled here (nothing left to protect)
    cancelled_sl, filled_tp = leg(engine, b.id, "stop_loss"), leg(engine, b.id, "take_profit")
    assert (filled_tp.status, cancelled_sl.status, entry.status, position(engine)) == (
        S.FILLED, S.CANCELLED, S.PARTIALLY_FILLED, 0)
    # ...and fills its rest: both legs are placed again for it (51200 first: the engine checks a
    # leg placed in reaction to a poll against the previous poll's price)
    script(engine, "51200", "50980")
    await engine.tick()
    await engine.tick()
    assert (entry.status, position(engine)) == (S.FILLED, D("0.25"))
    sl, tp = leg(engine, b.id, "stop_loss"), leg(engine, b.id, "take_profit")
    assert (sl.id, tp.id) != (cancelled_sl.id, filled_tp.id)
    assert (sl.type, sl.status, sl.remaining, tp.type, tp.status, tp.remaining) == (
        OrderType.STOP, S.OPEN, D("0.25"), OrderType.TAKE_PROFIT, S.OPEN, D("0.25"))
    assert engine.get_contingent(b.id).legs["stop_loss"].dropped is None  # type: ignore[union-attr]


async def test_stop_loss_is_cancelled_only_once_its_replacement_works(engine: Engine, clock: ManualClock) -> None:
    venue = engine.venue
    venue.can_amend = False  # type: ignore[misc]
    venue.lookup_is_definitive = False  # type: ignore[misc]  # as on ccxt venues
    b = await engine.place_bracket_order(BTC, "buy", D("0.5"), entry=D("50990"), stop_loss=D("50500"),
                                         take_profit=D("51500"))
    script(engine, "50989.9")
    await engine.tick()
    working = leg(engine, b.id, "stop_loss")
    real_submit = venue.submit

    async def lost_stop(o: Order):  # noqa: ANN202
        if o.type is OrderType.STOP:
            raise VenueTimeout("read timeout")  # the replacement's answer never arrives
        return await real_submit(o)

    venue.submit = lost_stop  # type: ignore[method-assign]
    script(engine, "50980")
    for _ in range(3):
        await engine.tick()  # the entry fills: the stop-loss is replaced, new one first
    replacement = leg(engine, b.id, "stop_loss")
    assert replacement.status is S.UNRESOLVED and working.status is S.OPEN  # the old one still protects
    venue.lookup_is_definitive = True  # type: ignore[misc]  # the lookup now proves it never arrived
    clock.advance(10)  # past the lookup's backoff
    await engine.tick()
    await engine.tick()
    assert replacement.status is S.FAILED
    assert leg(engine, b.id, "stop_loss").id == working.id and working.status is S.OPEN  # current again
    assert "leg_restored" in await kinds(engine)
    venue.submit = real_submit  # type: ignore[method-assign]
    clock.advance(1)  # past the retry's backoff
    await engine.tick()
    await engine.tick()
    sl = leg(engine, b.id, "stop_loss")
    assert (sl.status, sl.remaining, working.status) == (S.OPEN, D("0.5"), S.CANCELLED)


async def test_oco_sibling_cancel_is_retried_after_a_transient_failure(engine: Engine, clock: ManualClock) -> None:
    await engine.place_market_order(BTC, "buy", D("0.6"))
    oco = await engine.place_oco_order(BTC, "sell", D("0.3"), price=D("51100"), stop_price=D("50900"))
    stop = leg(engine, oco.id, "stop")
    venue = engine.venue
    real_cancel = venue.cancel
    calls: list[str] = []

    async def one_blip(o: Order):  # noqa: ANN202
        calls.append(o.id)
        if len(calls) == 1:
            raise VenueUnavailable("502 bad gateway")
        return await real_cancel(o)

    venue.cancel = one_blip  # type: ignore[method-assign]
    script(engine, "51200")
    await engine.tick()  # the limit fills; the stop's cancel hits the blip
    await engine.tick()
    assert (stop.status, calls) == (S.OPEN, [stop.id])  # not retried in a loop, nor before the backoff
    clock.advance(1)
    await engine.tick()
    assert stop.status is S.CANCELLED and calls == [stop.id, stop.id]
    script(engine, "50800")
    await engine.tick()
    assert position(engine) == D("0.3")  # sold 0.3, not 0.6
    assert engine.get_contingent(oco.id).done is not None  # type: ignore[union-attr]


async def test_plain_oco_leg_is_cancelled_before_its_replacement_is_sent(engine: Engine) -> None:
    engine.venue.can_amend = False  # type: ignore[misc]
    oco = await engine.place_oco_order(BTC, "sell", D("0.5"), price=D("51100"), stop_price=D("50900"), reduce_only=False)
    old = leg(engine, oco.id, "stop")
    script(engine, "51100.1")  # the bid touches 51100: the limit fills 0.25 of the 0.5
    await engine.tick()
    assert leg(engine, oco.id, "limit").filled == D("0.25")
    new = leg(engine, oco.id, "stop")
    assert (old.status, new.status, new.remaining, new.reduce_only) == (S.CANCELLED, S.OPEN, D("0.25"), False)
    events = [(e["kind"], e["order_id"]) for e in await engine.journal.events()]  # type: ignore[union-attr]
    # never two plain stops at once: both could fill, and neither is capped by the position
    assert events.index(("order_cancelled", old.id)) < events.index(("order_created", new.id))


async def test_modified_leg_on_a_cancel_replace_venue_stays_in_its_bracket(engine: Engine) -> None:
    engine.venue.can_amend = False  # type: ignore[misc]
    b = await engine.place_bracket_order(BTC, "buy", D("0.2"), stop_loss=D("50500"), take_profit=D("51500"))
    tp = leg(engine, b.id, "take_profit")
    new_tp = await engine.modify_order(tp.id, price=D("51600"))
    assert new_tp.tag == tp.tag and leg(engine, b.id, "take_profit").id == new_tp.id
    assert engine.get_contingent(b.id).legs["take_profit"].dropped is None  # type: ignore[union-attr]
    events = await engine.journal.events(order_id=new_tp.id)  # type: ignore[union-attr]
    replaced = [e["data"] for e in events if e["kind"] == "order_replaced"]
    assert [d["replaces"] for d in replaced] == [tp.id]
    script(engine, "50400")
    await engine.tick()  # the stop-loss fills: the bracket cancels the replacement take-profit
    assert order(engine, new_tp.id).status is S.CANCELLED
    assert position(engine) == 0 and engine.venue.open_order_count() == 0  # type: ignore[attr-defined]


async def test_trailing_stop_fires_on_a_cross_seen_while_the_manager_was_busy(engine: Engine) -> None:
    await engine.place_market_order(BTC, "buy", D("0.1"))
    ts = await engine.place_trailing_stop(BTC, "sell", D("0.1"), trail_amount=D("100"))
    assert ts.stop_price == D("50900")
    manager = engine._contingent
    manager._busy = True  # another task is stepping (a bracket being placed on a slow venue)
    script(engine, "50850", "51000")  # through the stop, then back
    await engine.tick()
    await engine.tick()
    manager._busy = False
    await manager._kick()
    held = order(engine, ts.id)
    assert (held.status, held.stop_price) == (S.FILLED, D("50900")) and position(engine) == 0
    events = await engine.journal.events(order_id=ts.id)  # type: ignore[union-attr]
    triggered = [e["data"] for e in events if e["kind"] == "trailing_triggered"]
    assert [(D(d["trigger"]), D(d["price"])) for d in triggered] == [(D("50900"), D("50850"))]


async def test_restart_under_halted_cancels_the_legs_at_the_venue(db: Path, clock: ManualClock) -> None:
    async with paper(db, clock) as engine:
        b = await engine.place_bracket_order(BTC, "buy", D("0.2"), stop_loss=D("50500"), take_profit=D("51500"))
        # the halt persisted HALTED, then the process died before it cancelled anything
        await engine._set_trading_state(TradingState.HALTED, "test", "halted")
        assert engine.venue.open_order_count() == 2  # type: ignore[attr-defined]
    async with paper(db, clock) as engine:
        assert engine.get_contingent(b.id).done is not None  # type: ignore[union-attr]
        assert (leg(engine, b.id, "stop_loss").status, leg(engine, b.id, "take_profit").status) == (S.CANCELLED, S.CANCELLED)
        assert engine.venue.open_order_count() == 0  # type: ignore[attr-defined]


async def test_restart_after_a_refused_replacement_keeps_the_working_stop_current(db: Path, clock: ManualClock) -> None:
    async with paper(db, clock) as engine:
        engine.venue.can_amend = False  # type: ignore[misc]
        b = await engine.place_bracket_order(BTC, "buy", D("0.5"), entry=D("50990"), stop_loss=D("50500"),
                                             take_profit=D("51500"))
        script(engine, "50989.9")
        await engine.tick()
        working = leg(engine, b.id, "stop_loss")
        real_submit = engine.venue.submit

        async def refuse_stops(o: Order):  # noqa: ANN202
            if o.type is OrderType.STOP:
                raise OrderRejected("stop orders are paused")
            return await real_submit(o)

        engine.venue.submit = refuse_stops  # type: ignore[method-assign]
        engine._contingent._write = never_write  # type: ignore[method-assign]  # it dies before the links are written
        script(engine, "50980")
        await engine.tick()
        refused = [o for o in await engine.get_orders() if o.type is OrderType.STOP and o.status is S.REJECTED]
        assert len(refused) == 1
    async with paper(db, clock) as engine:
        served = engine.get_contingent(b.id).legs["stop_loss"].orders  # type: ignore[union-attr]
        assert served[:2] == [refused[0].id, working.id]  # linked before the working one, not after
        assert "leg_restored" not in await kinds(engine)
        sl = leg(engine, b.id, "stop_loss")  # caught up: the working stop is resized to the whole entry
        assert (sl.id, sl.status, sl.remaining) == (working.id, S.OPEN, D("0.5"))


async def test_step_errors_are_journaled(engine: Engine) -> None:
    async def fails(c: object) -> bool:
        raise EngineError("the venue said no")

    engine._contingent._step_bracket = fails  # type: ignore[method-assign]
    b = await engine.place_bracket_order(BTC, "buy", D("0.2"), stop_loss=D("50500"), take_profit=D("51500"))
    errors = [e["data"] for e in await engine.journal.events() if e["kind"] == "contingent_error"]  # type: ignore[union-attr]
    assert [(d["contingent"], d["error"]) for d in errors] == [(b.id, "the venue said no")]
