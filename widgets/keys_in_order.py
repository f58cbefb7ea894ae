"""Widgets whose own keys take effect in the order they were typed.

Textual hands a widget each key as the app reads it, but runs the widget's key bindings only
once the key has bubbled back up to the app, against whatever has focus *then*. Keys that
arrive in one read (fast typing, a slow SSH link, tmux send-keys, a macro) therefore apply out
of order or in the wrong place: in a price field "50000", backspace, backspace, "1" came out
"5000", not "5001"; Enter on the reduce-only box followed by Tab pressed HALT; Enter followed by
F3 placed nothing. This runs a widget's own bindings when the key reaches it, as Textual's open
fix for it does (issue #6605, PR #6631). Every focusable widget of the console is one.
"""

from __future__ import annotations

from textual import events
from textual.widgets import Checkbox, Input


class KeysInOrder:
    """Mixin, listed before the Textual widget class."""

    async def _on_key(self, event: events.Key) -> None:
        bindings = self._bindings  # type: ignore[attr-defined]
        keymap = self.app._keymap  # type: ignore[attr-defined]
        if keymap:  # resolved as the app would (set_keymap)
            bindings = bindings.copy()
            bindings.apply_keymap(keymap)
        for binding in bindings.key_to_bindings.get(event.key, ()):
            # priority bindings ran before the key got here (the app runs those, never twice)
            if not binding.priority and await self.app.run_action(binding.action, self):  # type: ignore[attr-defined]
                event.stop()
                event.prevent_default()
                return
        await super()._on_key(event)  # type: ignore[misc]


class OrderedInput(KeysInOrder, Input):
    pass


class OrderedCheckbox(KeysInOrder, Checkbox):
    pass
