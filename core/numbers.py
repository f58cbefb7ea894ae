"""Decimal helpers. ``to_decimal`` is the one conversion used at venue boundaries."""

from __future__ import annotations

from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation


def to_decimal(value: object) -> Decimal:
    """Convert a venue value (float, int, str) to Decimal without binary float noise."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or value is None:
        raise ValueError(f"not a number: {value!r}")
    try:
        return Decimal(str(value))  # str() first: Decimal(0.1) would keep the float's error
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None


def round_to_step(value: Decimal, step: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """Round ``value`` to a multiple of ``step`` (a tick or lot size)."""
    if step <= 0:
        return value
    return ((value / step).to_integral_value(rounding=rounding) * step).quantize(step)


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    return round_to_step(value, step, ROUND_FLOOR)


def is_multiple(value: Decimal, step: Decimal) -> bool:
    return step <= 0 or (value % step) == 0


def money(value: Decimal, places: int = 2) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)


def clean(value: Decimal) -> Decimal:
    """Drop trailing zeros without switching to exponent notation (6.51E+4 stays 65100)."""
    n = value.normalize()
    return n.quantize(Decimal(1)) if n.as_tuple().exponent > 0 else n  # type: ignore[operator]
