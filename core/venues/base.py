"""The venue protocol: what the engine needs from an exchange, simulated or real.

Everything crossing this boundary is already Decimal; a venue implementation converts its own
numbers on the way in (``core.numbers.to_decimal``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from core.models import Balance, Liquidity, Market, Order, OrderStatus


@dataclass(frozen=True, slots=True)
class VenueFill:
    """One trade of an order. ``amount`` is what the exchange traded (the order's filled count).

    ``fee`` is what the ledger books, in ``fee_currency``: a ccxt venue values every fee in the
    market's quote. A fee the exchange took in the base coin (OKX and Binance spot buys) is also
    ``base_fee``: the holding moves by ``amount - base_fee`` on a buy (``amount + base_fee`` sold
    on a sell). ``fee_unpriced`` names a fee in a third currency the venue could not value; it
    is booked as 0 and the engine says so."""

    trade_id: str
    amount: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: Liquidity
    timestamp: datetime
    base_fee: Decimal = Decimal(0)
    fee_unpriced: str | None = None


@dataclass(slots=True)
class VenueReport:
    """What a venue says about one order: its status and any fills not reported before."""

    client_order_id: str
    status: OrderStatus
    venue_order_id: str | None = None
    filled: Decimal = Decimal(0)
    fills: list[VenueFill] = field(default_factory=list)
    error: str | None = None
    price: Decimal | None = None  # the working price/amount after an amend
    amount: Decimal | None = None
    symbol: str | None = None
    side: str | None = None  # filled in by lookups: lets the engine adopt an order it never placed
    order_type: str | None = None


@dataclass(slots=True)
class VenueUpdates:
    reports: list[VenueReport]
    prices: dict[str, Decimal]


@dataclass(frozen=True, slots=True)
class Quote:
    symbol: str
    bid: Decimal
    ask: Decimal
    last: Decimal

    @property
    def spread(self) -> Decimal:
        return self.ask - self.bid


# Client order ids of orders a venue keeps in its algo book (native exits, trailing stops) start
# with this: the venue tells them from ordinary orders by it, also after a restart.
NATIVE_PREFIX = "algo"


@dataclass(frozen=True, slots=True)
class NativeExits:
    """Take-profit and stop-loss the exchange attaches to an entry order and places itself once
    the entry has filled, as one algo order (both prices: one fires, the other is gone with it)
    under ``client_order_id``."""

    client_order_id: str
    stop_loss: Decimal | None
    take_profit: Decimal | None


@dataclass(frozen=True, slots=True)
class NativeTrail:
    """A trailing stop kept by the exchange: ``percent`` (e.g. 2 for 2 %) or ``amount`` behind the
    best price since ``activation`` (at once without it)."""

    percent: Decimal | None = None
    amount: Decimal | None = None
    activation: Decimal | None = None


NativeForm = NativeExits | NativeTrail


def native_support(venue: object) -> frozenset[str]:
    """What a venue keeps natively of the contingent orders ("bracket", "trailing"): the optional
    ``native_contingent`` attribute; nothing (all emulated in the core) without it, as on the sim.
    A venue that has it also has ``plan_native(client_order_id, form)``, which makes its next
    ``submit`` of that client order id send the native form, and ``follow(order)`` for orders the
    exchange created itself (attached exits)."""
    return frozenset(getattr(venue, "native_contingent", frozenset()))


class Venue(Protocol):
    name: str
    account: str
    markets: dict[str, Market]
    can_amend: bool
    has_cancel_all: bool
    lookup_is_definitive: bool  # True when "not found" proves the order never arrived
    halted: bool  # set by the engine while trading is HALTED: a venue sends nothing of its own then

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def submit(self, order: Order) -> VenueReport: ...

    async def cancel(self, order: Order) -> VenueReport: ...

    async def amend(self, order: Order, price: Decimal | None, amount: Decimal | None) -> VenueReport: ...

    async def cancel_all(self, symbol: str | None = None) -> list[VenueReport]: ...

    async def fetch_order(self, order: Order) -> VenueReport | None: ...

    # the end of an acked order the venue no longer knows (fetch_order: None), from its trades;
    # None when they cannot be read
    async def fetch_forgotten(self, order: Order) -> VenueReport | None: ...

    # a cancel the venue completes by itself, at a later poll (a stop it holds, cancelled just
    # before a crash): the order stays cancelling, it is not open again
    def cancel_pending(self, order: Order) -> bool: ...

    async def fetch_open_orders(self, symbol: str | None = None) -> list[VenueReport]: ...

    async def fetch_balance(self) -> Balance: ...

    async def fetch_positions(self) -> dict[str, Decimal]: ...  # symbol -> signed size, non-zero only

    async def poll(self) -> VenueUpdates: ...

    def quote(self, symbol: str) -> Quote | None: ...

    def restore(self, orders: Sequence[Order], prices: dict[str, Decimal]) -> None: ...
