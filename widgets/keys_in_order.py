"""Widgets whose keys take effect in the order they were typed, where they were typed.

Textual hands a widget each key as the app reads it, but runs key bindings only once the key
has bubbled back up to the app, against whatever has focus *then*. Keys that arrive in one read
(fast typing, a slow SSH link, tmux send-keys, a macro) therefore applied out of order or in the
wrong place: in a price field "50000", backspace, backspace, "1" came out "5000", not "5001";
Enter on the reduce-only box followed by Tab pressed HALT; "c" in the positions pane followed
by F3 cancelled the selected order. Here a widget runs the bindings its key would reach (its
own, then its containers', screen's and, on the main screen, the app's: Textual's binding
chain, as if it still had the focus) when the key reaches it, and the key goes no further.
Textual's open fix (issue #6605, PR #6631) does the first part for Input and TextArea. Every
focusable widget of the console is one.

The app routes one key at a time (console.key_router), so keys for different widgets keep
their order too. With it, Textual's own late binding would mostly find the focus unchanged;
this still keeps each key's bindings with the widget it was typed into when the router had to
give up waiting on a key.
"""

from __future__ import annotations

from typing import Any

from textual import events
from textual.binding import BindingsMap
from textual.dom import DOMNode
from textual.geometry import Size
from textual.keys import key_to_character
from textual.reactive import Reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Checkbox, Input


def _binding_chain(widget: Any) -> list[tuple[DOMNode, BindingsMap]]:
    """Textual's Screen._modal_binding_chain, for ``widget`` rather than the focused one: a key
    the widget itself consumes (a letter in an Input) binds nothing above it."""
    keymap = widget.app._keymap
    chain: list[tuple[DOMNode, BindingsMap]] = []
    for node in widget.ancestors_with_self:
        bindings = node._bindings.copy()
        for consumer, _ in chain:
            for key in list(bindings.key_to_bindings):
                if consumer.check_consume_key(key, key_to_character(key)):
                    del bindings.key_to_bindings[key]
        if keymap:
            bindings.apply_keymap(keymap)
        chain.append((node, bindings))
        if node.is_modal:
            break
    return chain


async def _run_binding(widget: Any, namespace: Any, bindings: BindingsMap, key: str) -> bool:
    for binding in bindings.key_to_bindings.get(key, ()):
        # priority bindings ran before the key got here (the app runs those, never twice)
        if not binding.priority and await widget.app.run_action(binding.action, namespace):
            return True
    return False


class KeysInOrder:
    """Mixin, listed before the Textual widget class."""

    async def _on_key(self, event: events.Key) -> None:
        own = self._bindings  # type: ignore[attr-defined]
        if self.app._keymap:  # type: ignore[attr-defined]  # resolved as the app would (set_keymap)
            own = own.copy()
            own.apply_keymap(self.app._keymap)  # type: ignore[attr-defined]
        if await _run_binding(self, self, own, event.key):  # its own (backspace, enter, c, x...)
            event.stop()
            event.prevent_default()
            return
        await super()._on_key(event)  # type: ignore[misc]  # a character typed into an Input
        if not event._stop_propagation:  # the chain above it only now: typing skips it
            for namespace, bindings in _binding_chain(self)[1:]:
                if await _run_binding(self, namespace, bindings, event.key):
                    break
        event.stop()  # never resolved again, later, against another focus


class SubmitOnEnter:
    """Mixin for a form: Enter in one of its fields calls ``submit()``, which reads the fields
    right then. Input's Enter posts a Submitted message, and a form that read its fields when
    handling it read the keys typed after Enter too: Enter, F2, "0.05" sent 0.05, not the amount
    on the screen when Enter was pressed."""

    def submit(self) -> object:
        raise NotImplementedError


class OrderedInput(KeysInOrder, Input):
    # Input sets its scrollable width from its text at every change, and Widget's reactive lays
    # the whole screen out for it: every typed character, ~10-30 ms with 10,000 orders. The
    # width scrolls the text only; an Input sized by its content lays out again itself
    # (Input._watch_value, styles.auto_dimensions). See widgets.in_place.
    virtual_size = Reactive(Size(0, 0), layout=False)

    def watch_virtual_size(self) -> None:
        # what that layout also did: a shorter value (Delete, a value set in code) keeps the
        # text in view, where the scroll offset would otherwise stay past its new end
        self.scroll_x = self.validate_scroll_x(self.scroll_x)

    async def action_submit(self) -> None:
        form = next((node for node in self.ancestors if isinstance(node, SubmitOnEnter)), None)
        if form is None:
            await super().action_submit()
        else:
            form.submit()


class OrderedCheckbox(KeysInOrder, Checkbox):
    pass


def move_focus(screen: Screen[Any], direction: int) -> None:
    """Tab / shift+tab (and the forms' up / down), once the screen is laid out. Textual orders the
    focus chain by where each widget is on the screen, which it knows only after the next layout:
    a row the key before had just shown (the order entry's Trail row, after "tr") sorted first
    until then, and a Tab read with "tr" skipped it."""
    if screen._layout_required or any(widget._layout_required for widget in screen.walk_children(Widget)):
        screen._refresh_layout()
    if direction > 0:
        screen.focus_next()
    else:
        screen.focus_previous()
