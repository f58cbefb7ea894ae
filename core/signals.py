"""Signal confirmation: score a trading signal and confirm it or refuse it with reasons."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from core.config import SignalFilters
from core.models import Dec, Side, TradingState
from core.venues.base import Quote


class Direction(StrEnum):
    LONG = "long"
    SHORT = "short"
    CLOSE = "close"


class Signal(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    symbol: Annotated[str, BeforeValidator(lambda v: v.strip().upper() if isinstance(v, str) else v)]
    direction: Direction
    strength: float = Field(ge=0, le=1)
    timestamp: datetime
    source: str = "manual"
    entry: Dec | None = None
    stop_loss: Dec | None = None
    take_profit: Dec | None = None
    timeframe: str | None = None

    @model_validator(mode="after")
    def _protective_sides(self) -> Signal:
        if self.direction is not Direction.CLOSE and self.entry is not None:
            from core.risk import protective_problems

            side = Side.BUY if self.direction is Direction.LONG else Side.SELL
            problems = protective_problems(side, self.entry, self.stop_loss, self.take_profit)
            if problems:
                raise ValueError("; ".join(problems))
        return self


class SignalVerdict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    signal: Signal
    confirmed: bool
    score: float  # ranks confirmed signals: strength, less a spread penalty, plus a trend bonus
    reasons: list[str]  # why it was refused (empty when confirmed)
    notes: list[str] = []  # figures behind the score


class Sizing(BaseModel):
    """How big an order a confirmed signal becomes: a fraction of equity or a fixed amount."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    equity_fraction: Dec | None = None
    amount: Dec | None = None
    leverage: Dec = Decimal(1)

    @model_validator(mode="after")
    def _one_of(self) -> Sizing:
        if (self.equity_fraction is None) == (self.amount is None):
            raise ValueError("give exactly one of equity_fraction or amount")
        if self.equity_fraction is not None and not (0 < self.equity_fraction <= 1):
            raise ValueError(f"equity_fraction must be in (0, 1], got {self.equity_fraction}")
        if self.amount is not None and self.amount <= 0:
            raise ValueError(f"amount must be > 0, got {self.amount}")
        return self


def _returns_std_pct(prices: Sequence[Decimal]) -> float:
    if len(prices) < 3:
        return 0.0
    rets = [float(b / a) - 1.0 for a, b in zip(prices, prices[1:], strict=False) if a > 0]
    mean = sum(rets) / len(rets)
    return math.sqrt(sum((r - mean) ** 2 for r in rets) / (len(rets) - 1)) * 100


def screen_signal(
    signal: Signal,
    *,
    filters: SignalFilters,
    now: datetime,
    state: TradingState,
    quote: Quote | None,
    prices: Sequence[Decimal],
    last_trade_at: datetime | None,
    has_position: bool,
) -> SignalVerdict:
    """Apply every filter; refuse with every reason that applies, and score the signal."""
    reasons: list[str] = []
    notes: list[str] = []
    score = signal.strength
    opening = signal.direction is not Direction.CLOSE
    if state is TradingState.HALTED:
        reasons.append("trading is HALTED")
    elif state is TradingState.REDUCING and opening:
        reasons.append("trading is REDUCING: only closing signals pass")
    if signal.direction is Direction.CLOSE and not has_position:
        reasons.append(f"close signal but there is no {signal.symbol} position")
    if signal.strength < filters.min_strength:
        reasons.append(f"strength {signal.strength:.2f} is below the minimum {filters.min_strength:.2f}")
    age = (now - signal.timestamp).total_seconds()
    if age > filters.max_age_seconds:
        reasons.append(f"signal is stale: {age:.0f} s old, the limit is {filters.max_age_seconds:.0f} s")
    if opening and last_trade_at is not None:
        since = (now - last_trade_at).total_seconds()
        if since < filters.cooldown_seconds:
            reasons.append(f"cooldown: last {signal.symbol} trade {since:.0f} s ago, wait {filters.cooldown_seconds:.0f} s")
    if quote is None:
        reasons.append(f"no market data for {signal.symbol}")
    else:
        mid = (quote.bid + quote.ask) / 2
        spread_pct = quote.spread / mid * 100 if mid > 0 else Decimal(0)
        notes.append(f"spread {spread_pct:.4f}%")
        if spread_pct > filters.max_spread_pct:
            reasons.append(f"spread {spread_pct:.3f}% is wider than {filters.max_spread_pct}%")
        else:
            score *= 1 - float(spread_pct / filters.max_spread_pct) * 0.2
    if opening:
        window = list(prices)[-filters.volatility_window :]
        if len(window) >= 3:
            vol = _returns_std_pct(window)
            notes.append(f"volatility {vol:.4f}%")
            if vol < float(filters.min_volatility_pct) or vol > float(filters.max_volatility_pct):
                reasons.append(
                    f"volatility {vol:.3f}% is outside the band {filters.min_volatility_pct}%..{filters.max_volatility_pct}%"
                )
        longer = list(prices)[-filters.trend_window :]
        if filters.require_trend_alignment and len(longer) >= filters.trend_window:
            mean = sum(longer) / len(longer)
            last = longer[-1]
            up = last > mean
            notes.append(f"trend {'up' if up else 'down'} (last {last} vs mean {mean:.2f})")
            if (signal.direction is Direction.LONG) != up:
                reasons.append(f"against the trend: {signal.direction.value} while price is {'above' if up else 'below'} its {len(longer)}-step mean")
            else:
                score *= 1.1  # aligned with the trend ranks higher (no cap: the order must survive)
    confirmed = not reasons
    return SignalVerdict(signal=signal, confirmed=confirmed, score=round(score if confirmed else 0.0, 4), reasons=reasons, notes=notes)
