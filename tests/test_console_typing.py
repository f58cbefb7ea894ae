"""Keys that arrive together (a fast typist, a paste of keystrokes, a slow SSH link that sends
several in one packet) land where they would have landed one by one.

The terminal driver hands the app every key of a read at once, and Textual routes each key to
the widget focused when the app reads it: a Tab handled by a widget's binding moves the focus
only after the keys behind it were already routed to the old field. These tests post a burst
through the driver, as the terminal does, instead of Pilot's one-key-then-wait presses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from textual import events
from textual.pilot import Pilot
from textual.widgets import Input, Select

from console import key_router
from console.app import TradedeskApp
from core import Engine, ManualClock, OrderStatus, Settings, TradingState
from widgets.algo_dialog import AlgoScreen
from widgets.confirm import ConfirmScreen
from widgets.modify_dialog import ModifyScreen
from widgets.order_entry import OrderEntry
from widgets.orders_view import OrdersView
from widgets.positions_table import PositionsTable

from .test_console_flows import QUIET_CLOCK, SIZE, entry_errors, limit, make_app, market, settle

_CHARACTERS = {"tab": "\t", "shift+tab": None, "enter": "\r", "down": None, "up": None, "f2": None, "f3": None,
               "f4": None, "f6": None, "ctrl+k": "\x0b",
               "backspace": "\x7f", "left": None, "home": None, "space": " ", "escape": "\x1b"}


@pytest.fixture
async def app(tmp_path: Path, clock: ManualClock) -> AsyncIterator[TradedeskApp]:
    app = make_app(tmp_path / "j.sqlite", clock)
    yield app
    await app.engine.close()


def burst(pilot: Pilot, *keys: str) -> None:
    """Every key posted before the app handles any of them, as the driver does with one read."""
    driver = pilot.app._driver
    assert driver is not None
    for key in keys:
        for k in [key] if key in _CHARACTERS else list(key):
            character = _CHARACTERS.get(k, k)
            driver.process_message(events.Key(k, character))


def field(app: TradedeskApp, name: str) -> str:
    return app.q(OrderEntry).query_one(f"#in-{name}", Input).value


async def test_tabs_typed_in_one_burst_move_to_the_next_fields(app: TradedeskApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.focused is not None and app.focused.id == "in-amount"
        burst(pilot, "0.01", "tab", "tab", "49000")
        await settle(pilot)
        assert field(app, "amount") == "0.01"
        assert field(app, "price") == "49000"
        assert app.focused.id == "in-price"


async def test_a_burst_with_enter_places_the_order_it_spells(app: TradedeskApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        burst(pilot, "0.02", "down", "down", "50900", "enter")
        await settle(pilot)
        orders = await app.engine.get_active_orders()
        assert [(str(o.amount), str(o.price)) for o in orders] == [("0.02", "50900")], entry_errors(app)


async def test_shift_tab_and_up_in_a_burst_go_back(app: TradedeskApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        burst(pilot, "tab", "tab", "47000", "shift+tab", "shift+tab", "0.03", "down", "down", "up", "up")
        await settle(pilot)
        assert (field(app, "amount"), field(app, "price")) == ("0.03", "47000")
        assert app.focused is not None and app.focused.id == "in-amount"


async def test_pane_key_in_a_burst_takes_the_keys_behind_it_along(app: TradedeskApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        burst(pilot, "f3", "x", "f2", "5")
        await settle(pilot)
        # "x" went to the orders pane (which ignores it), not into the amount field; "5" came back
        assert field(app, "amount") == "5"
        assert app.focused is not None and app.focused.id == "in-amount"
        burst(pilot, "f3")
        await settle(pilot)
        assert isinstance(app.focused, OrdersView)


async def test_entering_a_field_selects_it_so_typing_replaces_what_it_held(app: TradedeskApp) -> None:
    """As on an order ticket: "s" in Side replaces "buy", and after F2 a new amount replaces the
    last one. Typed after them, both were invalid ("buys", "0.010.02")."""
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*"0.01", "tab", "tab", *"50900", "enter")
        await settle(pilot)
        await pilot.press("f2", *"0.02", "shift+tab", "shift+tab", "shift+tab", "s", "f2")  # amount, TIF, type, side
        await settle(pilot)
        assert (field(app, "amount"), field(app, "side"), field(app, "price")) == ("0.02", "s", "50900")
        await pilot.press("tab", "tab", *"51100", "enter")
        await settle(pilot)
        orders = sorted(await app.engine.get_active_orders(), key=lambda o: o.created_at)
        assert [(o.side.value, str(o.amount), str(o.price)) for o in orders] == [
            ("buy", "0.01", "50900"), ("sell", "0.02", "51100")], entry_errors(app)


async def test_editing_keys_in_a_burst_apply_in_the_order_typed(app: TradedeskApp) -> None:
    """Textual's Input inserts characters as they reach it but runs its bound keys (backspace,
    arrows) once they bubble up to the app: in one read, "0.015" backspace "2" came out "0.01",
    and "51000" left left backspace "2" another price than typed (Textual #6605)."""
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        burst(pilot, "0.015", "backspace", "2", "tab", "tab", "51000", "left", "left", "backspace", "2", "home", "4")
        await settle(pilot)
        assert (field(app, "amount"), field(app, "price")) == ("0.012", "451200")


async def test_a_burst_in_the_modify_dialog_sets_the_price_typed(app: TradedeskApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await app.engine.place_order(limit("BTC/USDT", "50990", "0.01"))
        await settle(pilot)
        await pilot.press("f3", "m")
        await settle(pilot)
        assert isinstance(app.screen, ModifyScreen)
        # the price is selected on focus: "50971" replaces it, then 5097|5 -> 50|75 -> 50875
        burst(pilot, "50971", "backspace", "5", "left", "left", "backspace", "8", "enter")
        await settle(pilot)
        assert [str(o.price) for o in await app.engine.get_active_orders()] == ["50875"]


async def test_enter_on_a_checkbox_then_tab_ticks_it_and_halts_nothing(app: TradedeskApp) -> None:
    """The box's Enter ran once the key had bubbled up, against the focus the Tab behind it had
    moved on: the HALT button, which halted trading and cancelled every order."""
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.main_screen.set_focus(app.q(OrderEntry).query_one("#in-reduce_only"))
        await settle(pilot)
        burst(pilot, "enter", "tab")
        await settle(pilot)
        assert app.q(OrderEntry).query_one("#in-reduce_only").value is True
        assert app.engine.trading_state is TradingState.ACTIVE


@pytest.mark.parametrize("after", ["f3", "shift+tab"])
async def test_enter_then_a_focus_key_in_one_read_places_the_order(app: TradedeskApp, after: str) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*"0.02", "down", "down", *"50900")
        burst(pilot, "enter", after)  # submit, then look at the orders pane / go back a field
        await settle(pilot)
        assert [(str(o.amount), str(o.price)) for o in await app.engine.get_active_orders()] == [("0.02", "50900")]


async def test_tab_in_a_burst_in_the_modify_dialog_moves_to_the_amount(app: TradedeskApp) -> None:
    """Textual's own Tab binding ran after the amount behind it reached the price field: a modify
    went out at 509700.05, stopped only by the price checks."""
    async with app.run_test(size=SIZE) as pilot:
        order = await app.engine.place_order(limit("BTC/USDT", "50980", "0.02"))
        await settle(pilot)
        await pilot.press("f3", "m")
        await settle(pilot)
        assert isinstance(app.screen, ModifyScreen)
        burst(pilot, "50970", "tab", "0.05", "enter")
        await settle(pilot)
        after = await app.engine.get_order_by_id(order.id)
        assert after is not None and (str(after.price), str(after.amount)) == ("50970", "0.05")


async def test_pane_keys_under_a_dialog_leave_the_main_screen_alone(app: TradedeskApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.push_screen(ConfirmScreen("sure?"))
        await settle(pilot)
        await pilot.press("f3", "escape")
        await settle(pilot)
        assert app.focused is not None and app.focused.id == "in-amount"


async def test_up_and_down_in_the_algo_dialog_move_between_fields_but_open_the_kind_list(app: TradedeskApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f6")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, AlgoScreen)
        fields = [w for w in screen.query("Input") if w.display]
        screen.set_focus(fields[0])
        await settle(pilot)
        burst(pilot, "down", "7", "up")
        await settle(pilot)
        assert fields[1].value == "7" and screen.focused is fields[0]  # selected on focus: "7" replaced it
        kind = screen.query_one(Select)
        screen.set_focus(kind)
        await settle(pilot)
        await pilot.press("down")  # the kind list's own down opens it: the focus stays in it
        await settle(pilot)
        assert screen.focused is not None and (screen.focused is kind or kind in screen.focused.ancestors)
        assert kind.expanded


@pytest.mark.parametrize(("after", "field_typed"), [(("f2", "0.05"), "amount"), (("up", "up", "0.07"), "amount"),
                                                    (("backspace", "backspace", "50"), "price")])
async def test_keys_typed_after_enter_do_not_change_the_order_it_sends(
        app: TradedeskApp, after: tuple[str, ...], field_typed: str) -> None:
    """The form read its fields when Input's Submitted message was handled, after the keys typed
    behind Enter: Enter, F2, "0.05" sent 0.05 instead of the 0.02 on the screen."""
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*"0.02", "down", "down", *"50900")
        burst(pilot, "enter", *after)
        await settle(pilot)
        assert [(str(o.amount), str(o.price)) for o in await app.engine.get_active_orders()] == [("0.02", "50900")]
        assert field(app, field_typed) != ("0.02" if field_typed == "amount" else "50900")  # typed, not sent


@pytest.mark.parametrize(("pane", "keys"), [("positions", ("c", "f3")), ("positions", ("C", "f3")),
                                            ("orders", ("x", "f4")), ("orders", ("s", "f4"))])
async def test_a_key_one_pane_does_not_bind_is_not_run_by_the_pane_focused_next(
        app: TradedeskApp, pane: str, keys: tuple[str, ...]) -> None:
    """It went up to the app after the F-key behind it had moved the focus, and ran there as the
    other pane's binding: "c" in positions, then F3, cancelled the selected order."""
    async with app.run_test(size=SIZE) as pilot:
        await app.engine.place_order(limit("BTC/USDT", "50990", "0.01"))
        await app.engine.place_order(market("SOL/USDT", "2", side="sell"))
        await settle(pilot)
        app.main_screen.set_focus(app.q(PositionsTable) if pane == "positions" else app.q(OrdersView))
        await settle(pilot)
        burst(pilot, *keys)
        await settle(pilot)
        assert not [o for o in await app.engine.get_orders() if o.status is OrderStatus.CANCELLED]
        assert app.screen is app.main_screen  # no close-position or protection dialog either


async def test_keys_typed_after_f6_go_into_the_dialog_it_opens(app: TradedeskApp) -> None:
    """They went to the order entry beneath the dialog, or were lost, while it opened."""
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*"0.02")
        burst(pilot, "f6", "0.5")
        await settle(pilot)
        assert isinstance(app.screen, AlgoScreen)
        assert app.screen.query_one("#algo-amount", Input).value == "0.5"
        assert field(app, "amount") == "0.02"


async def test_a_modify_typed_in_one_read_from_the_orders_pane_sets_the_price(app: TradedeskApp) -> None:
    """F3, m, a price and Enter in one read: the keys behind "m" reached the orders pane before
    the app had opened the dialog "m" asked for."""
    async with app.run_test(size=SIZE) as pilot:
        await app.engine.place_order(limit("BTC/USDT", "50990", "0.01"))
        await settle(pilot)
        burst(pilot, "f3", "m", "50875", "enter", "f2", "0.04")
        await settle(pilot)
        assert [str(o.price) for o in await app.engine.get_active_orders()] == ["50875"]
        assert app.screen is app.main_screen and field(app, "amount") == "0.04"  # back where F2 points


async def test_f2_after_an_order_selects_the_amount_so_the_next_replaces_it(app: TradedeskApp) -> None:
    """After Enter the focus is still on the amount, so F2 moved nothing and selected nothing:
    the next amount typed after F2 was appended ("0.030.04")."""
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*"0.02", "down", "down", *"50900", "f2")
        burst(pilot, "0.03", "enter", "f2", "0.04", "enter")
        await settle(pilot)
        orders = sorted(await app.engine.get_active_orders(), key=lambda o: o.created_at)
        assert [str(o.amount) for o in orders] == ["0.03", "0.04"], entry_errors(app)


async def test_a_two_order_ticket_in_one_read_places_both_orders_as_typed(app: TradedeskApp) -> None:
    """Each field worked through its own queue: the first Enter read the amount after the second
    was typed, and one order of 0.03 went out instead of 0.02 and 0.03."""
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        burst(pilot, "0.02", "tab", "tab", "50100", "enter", "f2", "0.03", "enter")
        await settle(pilot)
        orders = sorted(await app.engine.get_active_orders(), key=lambda o: o.created_at)
        assert [(str(o.amount), str(o.price)) for o in orders] == [("0.02", "50100"), ("0.03", "50100")], \
            entry_errors(app)


@pytest.fixture
def waiting_at_halt(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many keys were still waiting each time the halt ran."""
    waiting: list[int] = []
    halt = TradedeskApp.action_halt

    def spy(self: TradedeskApp) -> None:
        waiting.append(self._keys.waiting)
        halt(self)

    monkeypatch.setattr(TradedeskApp, "action_halt", spy)
    return waiting


async def test_the_halt_key_does_not_wait_behind_keys_typed_before_it(
        app: TradedeskApp, waiting_at_halt: list[int]) -> None:
    """Keys go one at a time, but the halt is run as it is read, with the keys typed before it
    still waiting: the order they spell is refused."""
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        burst(pilot, "0.02", "tab", "tab", "50100", "enter", "ctrl+k")
        await settle(pilot)
        assert waiting_at_halt and waiting_at_halt[0] > 0
        assert app.engine.trading_state is TradingState.HALTED
        assert await app.engine.get_active_orders() == []


async def test_a_paste_behind_a_key_that_opens_a_dialog_goes_into_the_dialog(app: TradedeskApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        burst(pilot, "f6")
        assert pilot.app._driver is not None
        pilot.app._driver.process_message(events.Paste("0.5"))
        await settle(pilot)
        assert isinstance(app.screen, AlgoScreen)
        assert app.screen.query_one("#algo-amount", Input).value == "0.5"
        assert field(app, "amount") == ""


async def test_keys_behind_one_that_never_reports_back_are_routed_after_a_while(
        app: TradedeskApp, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key whose widget closed with the router's callback still queued must not hold the
    keyboard for good."""
    monkeypatch.setattr(key_router, "GIVE_UP_AFTER", 0.0)
    follow = key_router.KeyRouter._follow
    lost: list[int] = []

    def lose_the_first(self: key_router.KeyRouter, node: object, seq: int) -> None:
        if seq == 1 or seq in lost:  # never reaches the app
            lost.append(seq)
            return
        follow(self, node, seq)  # type: ignore[arg-type]

    monkeypatch.setattr(key_router.KeyRouter, "_follow", lose_the_first)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        burst(pilot, "0.02")
        await settle(pilot)
        assert lost and field(app, "amount") == "0.02"


async def test_the_trailing_row_typed_into_in_the_same_read_as_its_type(app: TradedeskApp) -> None:
    """"tr" shows the Trail row: Tabs read with it skipped the row, still hidden when they ran."""
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        burst(pilot, "shift+tab", "shift+tab", "tr", *["tab"] * 8, "100")
        await settle(pilot)
        assert field(app, "type") == "tr" and field(app, "trail") == "100", app.focused


async def test_a_halt_key_mapped_to_two_keys_does_not_wait_either(
        tmp_path: Path, clock: ManualClock, waiting_at_halt: list[int]) -> None:
    """The keymap takes a comma-separated list ("f12,ctrl+k"): both keys halt, and neither may
    queue behind the keys typed before it (the router compared the key with the whole list)."""
    engine = Engine.paper(db=tmp_path / "j.sqlite", seed=7, clock=clock, settings=Settings(keys={"halt": "f12,ctrl+k"}))
    app = TradedeskApp(engine, run_loops=False, flush_interval=0, clock_interval=QUIET_CLOCK)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            burst(pilot, "0.02", "tab", "tab", "50100", "enter", "ctrl+k")
            await settle(pilot)
            assert engine.trading_state is TradingState.HALTED
            assert waiting_at_halt and waiting_at_halt[0] > 0
    finally:
        await engine.close()


async def test_a_slow_key_is_waited_for_not_given_up_on(app: TradedeskApp, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check for a lost key runs at every turn of the loop here, as it would after a stall
    of GIVE_UP_AFTER: a key whose work is still queued is waited for. Given up on, the price and
    Enter behind "m" went to the orders pane before the dialog opened."""
    monkeypatch.setattr(key_router, "GIVE_UP_AFTER", 0.0)
    async with app.run_test(size=SIZE) as pilot:
        await app.engine.place_order(limit("BTC/USDT", "50990", "0.01"))
        await settle(pilot)
        burst(pilot, "f3", "m", "50875", "enter")
        await settle(pilot)
        assert [str(o.price) for o in await app.engine.get_active_orders()] == ["50875"]
