"""The one reading of numbers typed into the console's forms and dialogs."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from widgets.typed_numbers import positive_decimal


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("50000", (D("50000"), None)),
        (" 1,234.5 ", (D("1234.5"), None)),
        ("1_000", (D("1000"), None)),
        ("", (None, None)),
        ("   ", (None, None)),
        ("abc", (None, "not a number: 'abc'")),
        ("0", (None, "must be > 0, got 0")),
        ("-1", (None, "must be > 0, got -1")),
        ("NaN", (None, "must be > 0, got NaN")),
        ("Infinity", (None, "must be > 0, got Infinity")),
    ],
)
def test_positive_decimal(raw: str, expected: tuple[D | None, str | None]) -> None:
    assert positive_decimal(raw) == expected
