"""The simulated venue: an exchange in-process, matching orders against ``SimMarket``.

It behaves like an exchange, not like the engine: it keeps its own account (a ``Ledger``), its
own order book of resting orders, and answers with ``VenueReport``s. Market orders walk the
book (slippage grows with size), limits rest and fill when the price crosses them (maker fee),
partially when the levels hold less than they need, stops and take-profits trigger on the last
price, IOC/FOK/post-only and reduce-only behave as on a real venue. Dials inject latency,
rejects, lost answers and a request rate limit.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from core.clock import Clock, SystemClock
from core.errors import OrderNotFound, OrderRejected, VenueTimeout
from core.ledger import Ledger
from core.models import (
    ZERO,
    Balance,
    Fill,
    Liquidity,
    Market,
    Order,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from core.numbers import is_multiple
from core.venues.base import Quote, VenueFill, VenueReport, VenueUpdates
from core.venues.sim_market import SimMarket

_FEE_PLACES = Decimal("1e-8")


@dataclass(slots=True)
class SimDials:
    """Knobs for tests and realism. Rates are probabilities per request, drawn from a seeded RNG."""

    latency: float = 0.0  # seconds added to every request
    reject_rate: float = 0.0  # submits refused outright
    timeout_after_accept_rate: float = 0.0  # submits accepted, then the answer is lost
    rate_limit: float | None = None  # requests per second, None for unlimited


@dataclass(slots=True)
class _SimOrder:
    client_order_id: str
    venue_order_id: str
    symbol: str
    side: Side
    type: OrderType
    amount: Decimal
    price: Decimal | None
    stop_price: Decimal | None
    tif: TimeInForce
    reduce_only: bool
    leverage: Decimal
    status: OrderStatus = OrderStatus.OPEN
    filled: Decimal = ZERO
    triggered: bool = False
    reserve: Decimal = ZERO
    error: str | None = None
    fills: list[VenueFill] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        return self.amount - self.filled

    @property
    def working_limit(self) -> Decimal | None:
        """The price cap once working: a limit, a triggered stop-limit, or None for market."""
        if self.type is OrderType.LIMIT or self.type is OrderType.STOP_LIMIT:
            return self.price
        if self.type is OrderType.TAKE_PROFIT:
            return self.price
        return None

    def report(self) -> VenueReport:
        return VenueReport(
            client_order_id=self.client_order_id,
            venue_order_id=self.venue_order_id,
            status=self.status,
            filled=self.filled,
            fills=list(self.fills),
            error=self.error,
            price=self.price,
            amount=self.amount,
            symbol=self.symbol,
        )


class SimVenue:
    name = "sim"
    can_amend = True
    has_cancel_all = True
    halted = False  # it holds no order of its own to send
    lookup_is_definitive = True

    def __init__(
        self,
        market: SimMarket | None = None,
        *,
        clock: Clock | None = None,
        account: str = "paper",
        balance: Decimal = Decimal(100_000),
        maker_fee: Decimal = Decimal("0.0002"),
        taker_fee: Decimal = Decimal("0.0004"),
        dials: SimDials | None = None,
        seed: int = 7,
    ) -> None:
        self.market = market or SimMarket(seed)
        self.clock = clock or SystemClock()
        self.account = account
        self.maker_fee = maker_fee
        self.taker_fee = taker_fee
        self.dials = dials or SimDials()
        self.markets: dict[str, Market] = self._priced(self.market.markets)
        self.ledger = Ledger(account=account, initial_balance=balance)
        self._dice = random.Random(f"{seed}:dials")
        self._orders: dict[str, _SimOrder] = {}
        self._resting: dict[str, dict[str, _SimOrder]] = {s: {} for s in self.markets}
        self._consumed: dict[tuple[str, str], dict[Decimal, Decimal]] = {}
        self._reserved = ZERO
        self._next_id = 1
        self._next_request_at = 0.0
        self.requests = 0

    # -- lifecycle ----------------------------------------------------------------------------

    async def connect(self) -> None:
        connect = getattr(self.market, "connect", None)
        if connect is not None:  # a market fed by live prices learns its symbols now
            await connect()
            self.markets = self._priced(self.market.markets)
            self._resting = {s: self._resting.get(s, {}) for s in self.markets}

    def _priced(self, markets: dict[str, Market]) -> dict[str, Market]:
        """The markets with this venue's fee rates, as a real venue reports its own."""
        rates = {"maker_fee": self.maker_fee, "taker_fee": self.taker_fee}
        return {sym: m.model_copy(update=rates) for sym, m in markets.items()}

    async def close(self) -> None:
        close = getattr(self.market, "close", None)
        if close is not None:
            await close()

    def restore(self, orders: Sequence[Order], prices: dict[str, Decimal], ledger: Ledger | None = None) -> None:
        """Start from what the journal knows: the paper account, its live orders, last prices."""
        for sym, price in prices.items():
            if sym in self.market.specs and price > 0:
                self.market.set_price(sym, price)
        if ledger is not None:
            books = [ledger.book_snapshot(s) for s in ledger.books]
            self.ledger = Ledger.restore(ledger.snapshot(), books)
        for o in orders:
            if o.status.is_final or o.symbol not in self.markets:
                continue
            status = o.status
            if status in (OrderStatus.NEW, OrderStatus.SUBMITTING, OrderStatus.UNRESOLVED):
                continue  # never acknowledged: the engine settles them by lookup
            if status is OrderStatus.CANCELLING:
                status = OrderStatus.PARTIALLY_FILLED if o.filled else OrderStatus.OPEN
            so = self._new_order(o)
            so.venue_order_id = o.venue_order_id or so.venue_order_id
            so.status = status
            so.filled = o.filled
            so.triggered = status is OrderStatus.TRIGGERED or (o.filled > 0 and o.type.needs_trigger)
            self._orders[so.client_order_id] = so
            self._rest(so)

    # -- requests ---------------------------------------------------------------------------

    @property
    def _paced(self) -> bool:
        return bool(self.dials.rate_limit or self.dials.latency)

    async def _request(self) -> None:
        self.requests += 1
        d = self.dials
        if d.rate_limit:
            now = self.clock.monotonic()
            start = max(now, self._next_request_at)
            self._next_request_at = start + 1.0 / d.rate_limit
            if start > now:
                await self.clock.sleep(start - now)
        if d.latency:
            await self.clock.sleep(d.latency)

    async def submit(self, order: Order) -> VenueReport:
        if self._paced:
            await self._request()
        else:
            self.requests += 1  # as _request counts it: an unpaced venue answers at once
        if order.client_order_id in self._orders:
            raise OrderRejected(f"duplicate client order id {order.client_order_id}")
        if self.dials.reject_rate and self._dice.random() < self.dials.reject_rate:
            raise OrderRejected("simulated venue refused the order (reject_rate dial)")
        problems = self._validate(order)
        if problems:
            raise OrderRejected("; ".join(problems))
        so = self._new_order(order)
        self._orders[so.client_order_id] = so
        self._execute_new(so)
        if self.dials.timeout_after_accept_rate and self._dice.random() < self.dials.timeout_after_accept_rate:
            raise VenueTimeout("simulated timeout: the venue accepted the order but the answer was lost")
        return so.report()

    async def cancel(self, order: Order) -> VenueReport:
        if self._paced:
            await self._request()
        else:
            self.requests += 1
        so = self._orders.get(order.client_order_id)
        if so is None:
            raise OrderNotFound(f"order {order.client_order_id} is unknown to the simulated venue")
        if so.status.is_live:
            self._close(so, OrderStatus.CANCELLED)
        return so.report()

    async def cancel_all(self, symbol: str | None = None) -> list[VenueReport]:
        await self._request()
        reports = []
        for sym in [symbol] if symbol else list(self._resting):
            for so in list(self._resting.get(sym, {}).values()):
                self._close(so, OrderStatus.CANCELLED)
                reports.append(so.report())
        return reports

    async def amend(self, order: Order, price: Decimal | None, amount: Decimal | None) -> VenueReport:
        await self._request()
        so = self._orders.get(order.client_order_id)
        if so is None:
            raise OrderNotFound(f"order {order.client_order_id} is unknown to the simulated venue")
        if not so.status.is_live:
            raise OrderRejected(f"order {order.client_order_id} is {so.status.value}; it cannot be modified")
        spec = self.market.specs[so.symbol]
        problems = []
        if amount is not None:
            if amount <= so.filled:
                problems.append(f"new amount {amount} must be above the filled amount {so.filled}")
            if not is_multiple(amount, spec.lot):
                problems.append(f"amount {amount} is finer than the lot size {spec.lot}")
        if price is not None:
            if so.type not in (OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT) or so.price is None:
                problems.append(f"a {so.type.value} order has no limit price to modify")
            elif not is_multiple(price, spec.tick):
                problems.append(f"price {price} is finer than the tick size {spec.tick}")
        if price is not None and so.tif is TimeInForce.PO and self._marketable(so.symbol, so.side, price):
            problems.append("post-only order would take liquidity at the new price")
        if problems:
            raise OrderRejected("; ".join(problems))
        if amount is not None:
            so.amount = amount
        if price is not None:
            so.price = price
        if not so.type.needs_trigger or so.triggered:
            self._take(so, so.working_limit, Liquidity.TAKER)
        if so.status.is_live:
            self._reserve(so)
        return so.report()

    async def fetch_order(self, order: Order) -> VenueReport | None:
        await self._request()
        so = self._orders.get(order.client_order_id)
        return so.report() if so else None

    async def fetch_forgotten(self, order: Order) -> VenueReport | None:
        return None  # the sim forgets no order it acked (a restart restores them)

    def cancel_pending(self, order: Order) -> bool:
        return False  # a cancel is answered at once

    async def fetch_open_orders(self, symbol: str | None = None) -> list[VenueReport]:
        await self._request()
        return [
            so.report()
            for sym, book in self._resting.items()
            if symbol is None or sym == symbol
            for so in book.values()
        ]

    async def fetch_balance(self) -> Balance:
        await self._request()
        status = self.ledger.status(reserved=self._reserved)
        return Balance(currency=status.currency, total=status.equity, free=status.free_margin, used=status.used_margin)

    async def fetch_positions(self) -> dict[str, Decimal]:
        await self._request()
        return {sym: b.qty for sym, b in self.ledger.books.items() if b.qty != 0}

    def quote(self, symbol: str) -> Quote | None:
        if symbol not in self.market.specs:
            return None
        bid, ask = self.market.best(symbol)
        return Quote(symbol, bid, ask, self.market.last[symbol])

    async def poll(self) -> VenueUpdates:
        """Advance the market one step and match what it crosses."""
        refresh = getattr(self.market, "refresh", None)
        if refresh is not None:
            await refresh()
        prices = self.market.step()
        self._consumed.clear()  # the book refreshes every step
        changed: dict[str, _SimOrder] = {}
        for sym, book in self._resting.items():
            if not book:
                continue
            for so in self._triggered(sym, book):
                changed[so.client_order_id] = so
            for so in self._crossed(sym, book):
                before = so.filled
                self._take(so, so.working_limit, Liquidity.MAKER, at_own_price=True)
                if so.filled != before or not so.status.is_live:
                    changed[so.client_order_id] = so
        now = self.clock.now()
        for sym, price in prices.items():  # after matching, as the engine books fills before marks
            self.ledger.mark(sym, price, now)
        return VenueUpdates([so.report() for so in changed.values()], prices)

    # -- matching ---------------------------------------------------------------------------

    def _validate(self, order: Order) -> list[str]:
        market = self.markets.get(order.symbol)
        if market is None:
            return [f"unknown symbol {order.symbol} (this venue lists {', '.join(sorted(self.markets))})"]
        problems = []
        if not is_multiple(order.amount, market.lot_size):
            problems.append(f"amount {order.amount} is finer than the lot size {market.lot_size}")
        if order.amount < market.min_amount:
            problems.append(f"amount {order.amount} is below the minimum {market.min_amount}")
        for name, value in (("price", order.price), ("stop price", order.stop_price)):
            if value is not None and not is_multiple(value, market.tick_size):
                problems.append(f"{name} {value} is finer than the tick size {market.tick_size}")
        ref = order.price or order.stop_price
        if ref is None:
            bid, ask = self.market.best(order.symbol)
            ref = ask if order.side is Side.BUY else bid
        if order.amount * ref < market.min_notional:
            problems.append(f"order notional {order.amount * ref} is below the minimum {market.min_notional} {market.quote}")
        if order.leverage > market.max_leverage:
            problems.append(f"leverage {order.leverage} is above the maximum {market.max_leverage}")
        if order.type.needs_trigger and order.stop_price is not None and self._would_trigger(order, self.market.last[order.symbol]):
            problems.append(
                f"{order.type.value} trigger {order.stop_price} would trigger immediately (last price {self.market.last[order.symbol]})"
            )
        if order.time_in_force is TimeInForce.PO and order.price is not None and self._marketable(order.symbol, order.side, order.price):
            bid, ask = self.market.best(order.symbol)
            problems.append(f"post-only order would take liquidity (price {order.price}, best {'ask' if order.side is Side.BUY else 'bid'} {ask if order.side is Side.BUY else bid})")
        pos = self.ledger.signed_size(order.symbol)
        if order.reduce_only:
            if pos == 0:
                problems.append(f"reduce-only order refused: there is no {order.symbol} position to reduce")
            elif (pos > 0) == (order.side is Side.BUY):
                problems.append(f"reduce-only order would increase the {'long' if pos > 0 else 'short'} {order.symbol} position")
        elif not problems:
            need = order.amount * ref / order.leverage + order.amount * ref * self.taker_fee
            reducing = pos != 0 and (pos > 0) != (order.side is Side.BUY)
            equity, used, _ = self.ledger.figures()  # one pass over the books, the same sums
            free = equity - used - self._reserved
            if not reducing and need > free:
                problems.append(
                    f"insufficient margin: the order needs {need.quantize(Decimal('0.01'))} {market.quote} "
                    f"at {order.leverage}x, free margin is {free.quantize(Decimal('0.01'))} {market.quote}"
                )
        return problems

    def _new_order(self, order: Order) -> _SimOrder:
        vid = str(self._next_id)
        self._next_id += 1
        return _SimOrder(
            client_order_id=order.client_order_id,
            venue_order_id=vid,
            symbol=order.symbol,
            side=order.side,
            type=order.type,
            amount=order.amount,
            price=order.price,
            stop_price=order.stop_price,
            tif=order.time_in_force,
            reduce_only=order.reduce_only,
            leverage=order.leverage,
        )

    def _execute_new(self, so: _SimOrder) -> None:
        if so.type.needs_trigger:
            self._rest(so)
            return
        if so.tif is TimeInForce.FOK and self._available(so, so.price) < so.amount:
            self._close(so, OrderStatus.EXPIRED, "fill-or-kill order could not be filled completely")
            return
        if so.price is None or self._marketable(so.symbol, so.side, so.price):
            self._take(so, so.price, Liquidity.TAKER)
        if not so.status.is_live:
            return
        if so.type is OrderType.MARKET:
            status = OrderStatus.CANCELLED if so.filled else OrderStatus.REJECTED
            self._close(so, status, "the simulated book ran out of liquidity for this market order")
        elif so.tif in (TimeInForce.IOC, TimeInForce.FOK):
            self._close(so, OrderStatus.EXPIRED, None)
        else:
            self._rest(so)

    def _marketable(self, symbol: str, side: Side, price: Decimal) -> bool:
        bid, ask = self.market.best(symbol)
        return price >= ask if side is Side.BUY else price <= bid

    def _would_trigger(self, so: Order | _SimOrder, last: Decimal) -> bool:
        stop = so.stop_price
        assert stop is not None
        if so.type is OrderType.TAKE_PROFIT:  # triggers when price moves in the order's favour
            return last <= stop if so.side is Side.BUY else last >= stop
        return last >= stop if so.side is Side.BUY else last <= stop

    def _book_side(self, side: Side) -> str:
        return "ask" if side is Side.BUY else "bid"

    def _available(self, so: _SimOrder, limit: Decimal | None) -> Decimal:
        total = ZERO
        consumed = self._consumed.get((so.symbol, self._book_side(so.side)), {})
        for price, size in self.market.levels(so.symbol, self._book_side(so.side)):
            if limit is not None and (price > limit if so.side is Side.BUY else price < limit):
                break
            total += size - consumed.get(price, ZERO)
        return total

    def _take(self, so: _SimOrder, limit: Decimal | None, liquidity: Liquidity, at_own_price: bool = False) -> None:
        """Fill as much of ``so`` as the book allows up to ``limit``."""
        key = (so.symbol, self._book_side(so.side))
        consumed = self._consumed.setdefault(key, {})
        fee_rate = self.maker_fee if liquidity is Liquidity.MAKER else self.taker_fee
        for price, size in self.market.levels(so.symbol, key[1]):
            if so.remaining <= 0 or not so.status.is_live:
                break
            if limit is not None and (price > limit if so.side is Side.BUY else price < limit):
                break
            avail = size - consumed.get(price, ZERO)
            if avail <= 0:
                continue
            qty = min(avail, so.remaining)
            if so.reduce_only:
                pos = self.ledger.signed_size(so.symbol)
                if pos == 0 or (pos > 0) == (so.side is Side.BUY):
                    self._close(so, OrderStatus.CANCELLED, "reduce-only order cancelled: no position left to reduce")
                    break
                qty = min(qty, abs(pos))
            consumed[price] = consumed.get(price, ZERO) + qty
            fill_price = limit if at_own_price and limit is not None else price
            self._fill(so, qty, fill_price, fee_rate, liquidity)

    def _fill(self, so: _SimOrder, qty: Decimal, price: Decimal, fee_rate: Decimal, liquidity: Liquidity) -> None:
        now = self.clock.now()
        fee = (qty * price * fee_rate).quantize(_FEE_PLACES)
        vf = VenueFill(
            trade_id=f"{so.client_order_id}:{so.filled.normalize()}",
            amount=qty,
            price=price,
            fee=fee,
            fee_currency=self.markets[so.symbol].quote,
            liquidity=liquidity,
            timestamp=now,
        )
        so.fills.append(vf)
        self._unreserve(so)
        so.filled += qty
        self.ledger.apply_fill(
            Fill(
                id=vf.trade_id, order_id=so.client_order_id, client_order_id=so.client_order_id,
                account=self.account, symbol=so.symbol, side=so.side, amount=qty, price=price,
                fee=fee, liquidity=liquidity, timestamp=now,
            ),
            so.leverage,
        )
        if so.remaining <= 0:
            self._close(so, OrderStatus.FILLED)
        else:
            so.status = OrderStatus.PARTIALLY_FILLED
            if so.client_order_id in self._resting[so.symbol]:
                self._reserve(so)

    def _triggered(self, symbol: str, book: dict[str, _SimOrder]) -> list[_SimOrder]:
        last = self.market.last[symbol]
        fired = [so for so in book.values() if so.type.needs_trigger and not so.triggered and self._would_trigger(so, last)]
        for so in fired:
            so.triggered = True
            so.status = OrderStatus.TRIGGERED
            self._take(so, so.working_limit, Liquidity.TAKER)
            if so.status.is_live and so.working_limit is None:
                self._close(so, OrderStatus.CANCELLED if so.filled else OrderStatus.REJECTED,
                            "the simulated book ran out of liquidity for the triggered order")
        return fired

    def _crossed(self, symbol: str, book: dict[str, _SimOrder]) -> list[_SimOrder]:
        bid, ask = self.market.best(symbol)
        hits = []
        for so in book.values():
            limit = so.working_limit
            if limit is None or (so.type.needs_trigger and not so.triggered):
                continue
            if (so.side is Side.BUY and ask <= limit) or (so.side is Side.SELL and bid >= limit):
                hits.append(so)
        # price priority, then time (dicts keep insertion order and sort is stable)
        hits.sort(key=lambda o: -o.working_limit if o.side is Side.BUY else o.working_limit)  # type: ignore[operator]
        return hits

    # -- book-keeping ---------------------------------------------------------------------------

    def _rest(self, so: _SimOrder) -> None:
        self._resting[so.symbol][so.client_order_id] = so
        self._reserve(so)

    def _reserve(self, so: _SimOrder) -> None:
        self._unreserve(so)  # idempotent: a re-reserve replaces the order's previous hold
        if so.reduce_only:
            return
        ref = so.price or so.stop_price or self.market.last[so.symbol]
        so.reserve = so.remaining * ref / so.leverage
        self._reserved += so.reserve

    def _unreserve(self, so: _SimOrder) -> None:
        self._reserved -= so.reserve
        so.reserve = ZERO

    def _close(self, so: _SimOrder, status: OrderStatus, error: str | None = None) -> None:
        so.status = status
        if error:
            so.error = error
        self._unreserve(so)
        self._resting[so.symbol].pop(so.client_order_id, None)

    @property
    def reserved_margin(self) -> Decimal:
        return self._reserved

    def open_order_count(self) -> int:
        return sum(len(b) for b in self._resting.values())
