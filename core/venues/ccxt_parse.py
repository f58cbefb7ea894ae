"""ccxt structures (trades, tickers) as core values: the venue boundary where floats become
``Decimal(str(x))``. Shared by the REST answers and the websocket streams of the ccxt venue."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from core.clock import Clock
from core.models import Liquidity
from core.numbers import to_decimal
from core.venues.base import Quote, VenueFill


def dec(value: object) -> Decimal | None:
    return None if value is None else to_decimal(value)


def fill_from_trade(symbol: str, t: dict[str, Any], venue_order_id: str | None, clock: Clock) -> VenueFill:
    """One ccxt trade of our order as a fill, with its exact amount, price and fee."""
    fee = t.get("fee") or {}
    # Exchanges number trades per symbol: the symbol makes the id unique per account. A trade
    # without an id gets one from what identifies it.
    tid = t.get("id")
    if tid is None:
        tid = f"{venue_order_id}-{t.get('timestamp')}-{t.get('amount')}-{t.get('price')}"
    return VenueFill(
        trade_id=f"{symbol}#{tid}", amount=to_decimal(t["amount"]), price=to_decimal(t["price"]),
        fee=dec(fee.get("cost")) or Decimal(0), fee_currency=str(fee.get("currency") or ""),
        liquidity=Liquidity.MAKER if t.get("takerOrMaker") == "maker" else Liquidity.TAKER,
        timestamp=datetime.fromtimestamp(t["timestamp"] / 1000, UTC) if t.get("timestamp") else clock.now(),
    )


def quote_from_ticker(symbol: str, t: dict[str, Any]) -> Quote | None:
    """A ccxt ticker as a quote; None when it carries no last price."""
    last = dec(t.get("last"))
    if last is None:
        return None
    return Quote(symbol, dec(t.get("bid")) or last, dec(t.get("ask")) or last, last)
