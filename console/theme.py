"""The registered theme: every colour in styles/*.tcss comes from these variables."""

from __future__ import annotations

from textual.theme import Theme

TRADEDESK_THEME = Theme(
    name="tradedesk",
    primary="#4EA1FF",
    secondary="#7F8C9A",
    accent="#FFB454",
    warning="#F2C94C",
    error="#FF4D4F",
    success="#3DDC84",
    foreground="#D8DEE9",
    background="#0E1116",
    surface="#161B22",
    panel="#1F2630",
    dark=True,
    variables={
        "buy": "#3DDC84",
        "sell": "#FF6B6B",
        "halt": "#D7263D",
        "live": "#FF2D55",
        "paper": "#2F80ED",
        "footer-key-foreground": "#FFB454",
    },
)
