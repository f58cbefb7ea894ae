"""Stop, stop-limit and take-profit orders: native on the exchange where ccxt can place them as
ordinary orders, otherwise held here and sent when the price reaches their trigger.

Native means the trigger order lives in the exchange's ordinary order book: same ids, same
lookup and cancel by client order id, so the tracker follows it like any order. ccxt sends
Binance-style spot triggers that way (``stopLossPrice`` / ``takeProfitPrice`` become
STOP_LOSS[_LIMIT] / TAKE_PROFIT[_LIMIT]), and those exchanges list per market the order types
they accept (``info.orderTypes``), so a type is native only where the market lists it. Other
exchanges keep triggers in a separate algo-order book with its own ids (OKX ``order-algo``,
Bybit conditional orders); the tracker does not follow that book, so there the order is
emulated: held in the core (``Order.emulated``), checked against each polled last price, and
sent as a market or limit order under its own client order id when it fires.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core.models import Order, OrderType, Side

# The spot order type ccxt sends for a trigger order (Binance's names, listed in its markets).
_NATIVE_NAME = {
    (OrderType.STOP, False): "STOP_LOSS",
    (OrderType.STOP_LIMIT, True): "STOP_LOSS_LIMIT",
    (OrderType.TAKE_PROFIT, False): "TAKE_PROFIT",
    (OrderType.TAKE_PROFIT, True): "TAKE_PROFIT_LIMIT",
}


def native_trigger_supported(market: Mapping[str, Any] | None, order: Order) -> bool:
    """True when the exchange market lists the order type ccxt would send for this trigger."""
    if market is None:
        return True  # an unknown symbol: let the exchange refuse it with its own words
    listed = (market.get("info") or {}).get("orderTypes")
    if not isinstance(listed, list):
        return False
    return _NATIVE_NAME.get((order.type, order.price is not None)) in listed


def would_trigger(kind: OrderType, side: Side, stop: Decimal, last: Decimal) -> bool:
    """A stop fires when the price moves against the order's side past the trigger (a buy
    stop at or above it, a sell stop at or below); a take-profit when it moves in favour."""
    if kind is OrderType.TAKE_PROFIT:
        return last <= stop if side is Side.BUY else last >= stop
    return last >= stop if side is Side.BUY else last <= stop


def released(order: Order) -> Order:
    """The order as it is sent once triggered: a limit at its price, or a market order."""
    kind = OrderType.LIMIT if order.price is not None else OrderType.MARKET
    return order.model_copy(update={"type": kind, "stop_price": None})


@dataclass(slots=True)
class Held:
    order: Order  # the engine's own order: its status (e.g. cancelling) is read, never written
    verified: bool = True  # False after a restart: it may have been sent just before the crash
    not_found_at: float | None = None  # when a lookup first did not find it (monotonic seconds)
    cancel_journaled: bool = False  # restored cancelling: its (local) cancel's answer died with a crash


class TriggerBook:
    """The emulated trigger orders of one venue, by client order id, oldest first."""

    def __init__(self) -> None:
        self._held: dict[str, Held] = {}

    def __contains__(self, client_order_id: object) -> bool:
        return client_order_id in self._held

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, order: Order, *, verified: bool = True, cancel_journaled: bool = False) -> None:
        self._held[order.client_order_id] = Held(order, verified, cancel_journaled=cancel_journaled)

    def put_back(self, held: Held) -> None:
        """Hold again what was taken out for a request that failed (a cancel-all)."""
        self._held.setdefault(held.order.client_order_id, held)

    def get(self, client_order_id: str) -> Held | None:
        return self._held.get(client_order_id)

    def pop(self, client_order_id: str) -> Held | None:
        return self._held.pop(client_order_id, None)

    def symbols(self) -> set[str]:
        return {h.order.symbol for h in self._held.values()}

    def of_symbol(self, symbol: str | None) -> list[Held]:
        return [h for h in self._held.values() if symbol is None or h.order.symbol == symbol]

    def due(self, prices: Mapping[str, Decimal]) -> list[Held]:
        """Held orders whose trigger the last prices reached."""
        fired = []
        for h in self._held.values():
            o = h.order
            last = prices.get(o.symbol)
            if last is not None and o.stop_price is not None and would_trigger(o.type, o.side, o.stop_price, last):
                fired.append(h)
        return fired
