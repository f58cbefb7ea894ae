"""Which currency an exchange account settles in: the currency its cash (and the ledger) is
counted in. Binance and OKX quote in USDT, USDC, FDUSD and more; BTCTurk quotes in TRY and USDT.

The rule, without a currency named by configuration: among the markets' quote currencies, the
ones the account holds; of those, drop any that is itself bought with another held one (BTC in
BTC/USDC is an asset there, USDT in USDT/TRY too); then the one most markets are quoted in,
alphabetical on a tie so the answer never depends on dict order. With nothing held it is the
quote of the most markets.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from decimal import Decimal

from core.errors import OrderRejected
from core.models import Market


def settlement_currency(markets: Iterable[Market], held: Mapping[str, Decimal], configured: str | None = None,
                        *, venue: str = "the exchange") -> str:
    """The settlement currency of an account holding ``held`` (currency -> total) on ``markets``."""
    markets = list(markets)
    quoted = Counter(m.quote for m in markets)
    if configured is not None:
        currency = configured.strip().upper()
        if currency not in quoted:
            raise OrderRejected(f"{venue}: settlement currency {configured!r} is not the quote of any market "
                                f"(quotes: {', '.join(sorted(quoted)) or 'none loaded'})")
        return currency
    if not quoted:
        raise OrderRejected(f"{venue}: no market loaded, so no settlement currency can be chosen")
    candidates = {c for c in quoted if held.get(c, Decimal(0)) > 0}
    if candidates:
        priced_in_another = {m.base for m in markets if m.base in candidates and m.quote in candidates}
        candidates = (candidates - priced_in_another) or candidates  # a cycle (A/B and B/A): keep them all
    return min(candidates or quoted, key=lambda c: (-quoted[c], c))
