"""Pre-trade risk checks: every order from every client passes here before it is journaled as
sent. ``check`` returns *every* reason to refuse, not just the first, so the trader fixes an
order in one go. It runs on the hot path: no allocation unless something is wrong.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from core.clock import Clock
from core.config import RiskLimits
from core.models import ZERO, Market, Order, OrderType, Side, TradingState
from core.numbers import clean, round_to_step

_HUNDRED = Decimal(100)


@dataclass(slots=True)
class RiskContext:
    """What the checks need to know about the account and market at this moment."""

    market: Market | None
    last: Decimal | None  # last traded price of the symbol
    position: Decimal  # signed size of the current position in the symbol
    equity: Decimal
    free_margin: Decimal
    exposure: Decimal  # total notional of all positions at mark
    state: TradingState
    duplicate_client_id: bool = False
    closing: bool = False  # the halt's own flattening orders: allowed while HALTED
    pending_reduce: Decimal = ZERO  # open orders already working against the position


def reduces_position(side: Side, amount: Decimal, position: Decimal) -> bool:
    """True when the order only makes the current position smaller (never flips it)."""
    if position == 0:
        return False
    return (position > 0) != (side is Side.BUY) and amount <= abs(position)


def protective_problems(side: Side, entry: Decimal, stop_loss: Decimal | None, take_profit: Decimal | None) -> list[str]:
    """A stop-loss sits below entry for a long (above for a short); a take-profit the other way."""
    problems = []
    long = side is Side.BUY
    if stop_loss is not None and (stop_loss >= entry if long else stop_loss <= entry):
        problems.append(
            f"stop-loss {stop_loss} is on the wrong side of entry {entry}: it must be {'below' if long else 'above'} it for a {'long' if long else 'short'}"
        )
    if take_profit is not None and (take_profit <= entry if long else take_profit >= entry):
        problems.append(
            f"take-profit {take_profit} is on the wrong side of entry {entry}: it must be {'above' if long else 'below'} it for a {'long' if long else 'short'}"
        )
    return problems


class RiskEngine:
    def __init__(self, limits: RiskLimits, clock: Clock) -> None:
        self.limits = limits
        self.clock = clock
        self._recent: deque[float] = deque()

    def round_to_market(self, order: Order, market: Market) -> list[str]:
        """With ``round_to_market`` on, snap amount and prices to the market's steps, always in
        the trader's favour (amount down; buy prices down, sell prices up). Returns notes."""
        notes = []
        amount = round_to_step(order.amount, market.lot_size, ROUND_FLOOR)
        if amount != order.amount:
            notes.append(f"amount rounded from {order.amount} to {amount} (lot size {market.lot_size})")
            order.amount = amount
        mode = ROUND_FLOOR if order.side is Side.BUY else ROUND_CEILING
        for name in ("price", "stop_price"):
            value = getattr(order, name)
            if value is not None:
                snapped = round_to_step(value, market.tick_size, mode)
                if snapped != value:
                    notes.append(f"{name.replace('_', ' ')} rounded from {value} to {snapped} (tick size {market.tick_size})")
                    setattr(order, name, snapped)
        return notes

    def check(self, order: Order, ctx: RiskContext, record: bool = True) -> list[str]:
        """Every reason to refuse ``order``; an empty list means it may be sent. ``record``
        counts a passing order against the rate limit (a preview does not)."""
        lim = self.limits
        reasons: list[str] = []
        amount = order.amount
        price = order.price
        stop = order.stop_price
        kind = order.type

        # trading state first: it is what the trader most needs to read
        state = ctx.state
        # What open orders will already take off the position does not count as reducible again
        # (three resting sells against one long would otherwise flip it while REDUCING).
        position = ctx.position
        if ctx.pending_reduce:
            position = max(position - ctx.pending_reduce, ZERO) if position > 0 else min(position + ctx.pending_reduce, ZERO)
        reducing = reduces_position(order.side, amount, position) if amount.is_finite() else False
        if ctx.closing:
            # The halt's own flattening orders: only their shape and that they reduce matter. Size
            # and rate limits must not keep a position open in an emergency.
            if not amount.is_finite() or amount <= 0:
                reasons.append(f"amount must be a finite number > 0, got {amount}")
            if ctx.market is None:
                reasons.append(f"unknown symbol {order.symbol}")
            if not reducing:
                reasons.append(f"closing order would not reduce the {order.symbol} position")
            return reasons
        if state is TradingState.HALTED and not ctx.closing:
            reasons.append("trading is HALTED: no new orders until an explicit resume")
        elif state is TradingState.REDUCING and not reducing:
            reasons.append("trading is REDUCING: only orders that reduce an open position are allowed")

        if not amount.is_finite() or amount <= 0:
            reasons.append(f"amount must be a finite number > 0, got {amount}")
            amount = ZERO
        if kind.needs_price and price is None:
            reasons.append(f"price is required for a {kind.value} order")
        elif price is not None and (not price.is_finite() or price <= 0):
            reasons.append(f"price must be a finite number > 0, got {price}")
            price = None
        if kind.needs_trigger and (stop is None or not stop.is_finite() or stop <= 0):
            reasons.append(f"stop price is required for a {kind.value} order and must be > 0, got {stop}")
            stop = None
        if ctx.duplicate_client_id:
            reasons.append(f"duplicate client order id {order.client_order_id}")

        market = ctx.market
        if market is None:
            reasons.append(f"unknown symbol {order.symbol}")
            return reasons
        if amount and amount % market.lot_size:
            reasons.append(f"amount {amount} is finer than the lot size {market.lot_size}")
        if price is not None and price % market.tick_size:
            reasons.append(f"price {price} is finer than the tick size {market.tick_size}")
        if stop is not None and stop % market.tick_size:
            reasons.append(f"stop price {stop} is finer than the tick size {market.tick_size}")
        if amount and amount < market.min_amount:
            reasons.append(f"amount {amount} is below the venue's minimum {market.min_amount}")
        if market.max_amount is not None and amount > market.max_amount:
            reasons.append(f"amount {amount} is above the venue's maximum {market.max_amount}")

        last = ctx.last
        ref = price or stop or last
        if ref is None:
            reasons.append(f"no price known for {order.symbol} yet: cannot value the order")
            return reasons
        notional = amount * ref
        if amount and notional < market.min_notional:
            reasons.append(f"order notional {clean(notional):f} is below the venue's minimum {market.min_notional} {market.quote}")
        if notional > lim.max_order_notional:
            reasons.append(f"order notional {clean(notional):f} is above max_order_notional {lim.max_order_notional}")
        signed = amount if order.side is Side.BUY else -amount
        after = ctx.position + signed
        position_notional = abs(after) * ref
        if abs(after) > abs(ctx.position) and position_notional > lim.max_position_notional:
            reasons.append(
                f"resulting {order.symbol} position notional {clean(position_notional):f} is above max_position_notional {lim.max_position_notional}"
            )
        exposure_after = ctx.exposure + (abs(after) - abs(ctx.position)) * ref
        if exposure_after > ctx.exposure and ctx.equity > 0 and exposure_after * _HUNDRED > lim.max_exposure_pct * ctx.equity:
            pct = (exposure_after * _HUNDRED / ctx.equity).quantize(Decimal("0.1"))
            reasons.append(f"total exposure would be {pct}% of equity, above max_exposure_pct {lim.max_exposure_pct}%")
        if order.leverage > lim.max_leverage:
            reasons.append(f"leverage {order.leverage} is above max_leverage {lim.max_leverage}")
        if order.leverage > market.max_leverage:
            reasons.append(f"leverage {order.leverage} is above the venue's maximum {market.max_leverage}")
        if not reducing and not order.reduce_only:
            needed = notional / order.leverage
            if needed > ctx.free_margin:
                reasons.append(
                    f"insufficient free margin: the order needs {needed.quantize(Decimal('0.01'))} {market.quote}, "
                    f"free margin is {ctx.free_margin.quantize(Decimal('0.01'))} {market.quote}"
                )
        if last is not None and price is not None and kind is OrderType.LIMIT:
            band = last * lim.price_band_pct / _HUNDRED
            if abs(price - last) > band:
                reasons.append(
                    f"limit price {price} is more than {lim.price_band_pct}% from the last price {last} (fat-finger band)"
                )
        if last is not None and stop is not None:
            long_protect = order.side is Side.SELL  # a sell stop protects a long
            if kind is OrderType.TAKE_PROFIT:
                wrong = stop <= last if long_protect else stop >= last
                if wrong:
                    reasons.append(
                        f"take-profit {stop} is on the wrong side of the last price {last}: it must be {'above' if long_protect else 'below'} it"
                    )
            elif stop >= last if long_protect else stop <= last:
                reasons.append(
                    f"stop {stop} is on the wrong side of the last price {last}: a {order.side.value} stop must be {'below' if long_protect else 'above'} it"
                )
        if order.reduce_only and not reducing:
            if position == 0:
                reasons.append(f"reduce-only order but there is no {order.symbol} position to reduce")
            else:
                reasons.append(f"reduce-only order would increase or flip the {order.symbol} position")
        if not reasons:
            now = self.clock.monotonic()
            recent = self._recent
            while recent and now - recent[0] >= 1.0:
                recent.popleft()
            if len(recent) >= lim.max_orders_per_second:
                reasons.append(f"order rate above max_orders_per_second {lim.max_orders_per_second:g}: throttled")
            elif record:
                recent.append(now)
        return reasons
