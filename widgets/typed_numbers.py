"""Numbers typed by the trader: one reading for every form and dialog."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation


def positive_decimal(raw: str) -> tuple[Decimal | None, str | None]:
    """Read a price or amount > 0 (``,`` and ``_`` as thousands separators are fine).

    Returns ``(value, None)``; ``(None, None)`` for an empty field (the caller knows whether it is
    required); or ``(None, what is wrong)`` in words the form can put after the field's name."""
    text = raw.replace(",", "").replace("_", "").strip()
    if not text:
        return None, None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None, f"not a number: {text!r}"
    if not value.is_finite() or value <= 0:
        return None, f"must be > 0, got {text}"
    return value, None
