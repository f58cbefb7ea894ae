"""The big red HALT button, always on screen. Cancelling is always safe: no confirmation."""

from __future__ import annotations

from textual.widgets import Button

from widgets.keys_in_order import KeysInOrder
from widgets.messages import HaltRequested


class HaltButton(KeysInOrder, Button):
    DEFAULT_CSS = """
    HaltButton { width: 100%; height: 3; }
    """

    def __init__(self, key_hint: str = "ctrl+k", id: str | None = "halt-button") -> None:
        super().__init__(f"HALT  [{key_hint}]", variant="error", id=id)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(HaltRequested())
