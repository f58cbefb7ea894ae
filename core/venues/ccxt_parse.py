"""ccxt structures (trades, tickers) as core values: the venue boundary where floats become
``Decimal(str(x))``. Shared by the REST answers and the websocket streams of the ccxt venue."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from core.clock import Clock
from core.models import Liquidity, Market
from core.numbers import clean, to_decimal
from core.venues.base import Quote, VenueFill


def dec(value: object) -> Decimal | None:
    return None if value is None else to_decimal(value)


FeeRate = Callable[[str, str], Decimal | None]  # (currency, quote) -> the currency's price in quote


def fill_from_trade(symbol: str, t: dict[str, Any], venue_order_id: str | None, clock: Clock,
                    market: Market | None = None, fee_rate: FeeRate | None = None) -> VenueFill:
    """One ccxt trade of our order as a fill, with its exact amount, price and fee.

    With the ``market``, the fee is valued in its quote (what the ledger books): a fee in the
    base coin is worth ``cost x price`` and is kept as ``base_fee`` too, a fee in a third
    currency (BNB) is worth ``cost x fee_rate(currency, quote)``, or 0 and named in
    ``fee_unpriced`` when that price is not known."""
    price = to_decimal(t["price"])
    # Exchanges number trades per symbol: the symbol makes the id unique per account. A trade
    # without an id gets one from what identifies it.
    tid = t.get("id")
    if tid is None:
        tid = f"{venue_order_id}-{t.get('timestamp')}-{t.get('amount')}-{t.get('price')}"
    if market is None:
        fee = t.get("fee") or {}
        value, currency = dec(fee.get("cost")) or Decimal(0), str(fee.get("currency") or "")
        base_fee, unpriced = Decimal(0), None
    else:
        value, base_fee, unpriced = _fee_in_quote(t, price, market, fee_rate)
        currency = market.quote
    return VenueFill(
        trade_id=f"{symbol}#{tid}", amount=to_decimal(t["amount"]), price=price,
        fee=value, fee_currency=currency,
        liquidity=Liquidity.MAKER if t.get("takerOrMaker") == "maker" else Liquidity.TAKER,
        timestamp=datetime.fromtimestamp(t["timestamp"] / 1000, UTC) if t.get("timestamp") else clock.now(),
        base_fee=base_fee, fee_unpriced=unpriced,
    )


def _fee_in_quote(t: dict[str, Any], price: Decimal, market: Market,
                  fee_rate: FeeRate | None) -> tuple[Decimal, Decimal, str | None]:
    """(fee value in quote, base coin taken, what could not be valued) of one ccxt trade."""
    # ccxt lists every fee of a trade in ``fees`` (one per currency) and repeats a single one in ``fee``
    fees = t.get("fees") or ([t["fee"]] if t.get("fee") else [])
    value = base_fee = Decimal(0)
    unpriced: list[str] = []
    for f in fees:
        cost = dec((f or {}).get("cost"))
        if not cost:
            continue
        currency = str(f.get("currency") or market.quote)
        if currency == market.quote:
            value += cost
        elif currency == market.base:
            base_fee += cost
            value += cost * price
        elif (rate := fee_rate(currency, market.quote) if fee_rate else None) is not None:
            value += cost * rate
        else:
            unpriced.append(f"{cost} {currency}")
    return clean(value), base_fee, ", ".join(unpriced) or None


def quote_from_ticker(symbol: str, t: dict[str, Any]) -> Quote | None:
    """A ccxt ticker as a quote; None when it carries no last price."""
    last = dec(t.get("last"))
    if last is None:
        return None
    return Quote(symbol, dec(t.get("bid")) or last, dec(t.get("ask")) or last, last)
