"""Circuit breakers: evaluated on every fill and mark update (not on a slow timer). A tripped
breaker names itself and its figures; the engine moves the trading state accordingly."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import Decimal

from core.config import BreakerSettings
from core.models import AccountStatus, TradingState


@dataclass(frozen=True, slots=True)
class Trip:
    breaker: str
    action: TradingState
    reason: str


class BreakerMonitor:
    def __init__(self, settings: BreakerSettings) -> None:
        self.settings = settings
        self.consecutive_losses = 0
        self._rejects: deque[float] = deque()
        # After an explicit resume, losses and drawdown count from the equity at resume: the
        # trader has seen the figures that tripped the breaker and chose to go on.
        self._loss_from: Decimal | None = None
        self._peak_from: Decimal | None = None

    def rearm(self, status: AccountStatus, now: float) -> None:
        self.consecutive_losses = 0
        self._rejects.clear()
        self._loss_from = status.equity
        self._peak_from = status.equity

    def record_trade(self, realized: Decimal) -> None:
        """A fill that realized PnL: a loss extends the streak, a win ends it."""
        if realized < 0:
            self.consecutive_losses += 1
        elif realized > 0:
            self.consecutive_losses = 0

    def record_reject(self, now: float) -> None:
        self._rejects.append(now)

    def rejects_last_minute(self, now: float) -> int:
        while self._rejects and now - self._rejects[0] > 60.0:
            self._rejects.popleft()
        return len(self._rejects)

    def evaluate(self, status: AccountStatus, now: float) -> list[Trip]:
        s = self.settings
        trips = []
        loss = -status.daily_pnl
        start = status.equity - status.daily_pnl
        peak, drawdown_pct = status.equity_peak, status.drawdown_pct
        if self._loss_from is not None:
            loss = min(loss, self._loss_from - status.equity)
            start = self._loss_from
            self._peak_from = max(self._peak_from or status.equity, status.equity)
            peak = self._peak_from
            drawdown_pct = (peak - status.equity) * 100 / peak if peak > 0 else Decimal(0)
        if s.max_daily_loss is not None and loss >= s.max_daily_loss:
            trips.append(Trip("daily_loss", TradingState(s.daily_loss_action),
                              f"breaker daily_loss: daily PnL {status.daily_pnl:.2f} {status.currency} reached the limit -{s.max_daily_loss}"))
        if s.max_daily_loss_pct is not None and start > 0 and loss * 100 >= s.max_daily_loss_pct * start:
            pct = loss * 100 / start
            trips.append(Trip("daily_loss_pct", TradingState(s.daily_loss_action),
                              f"breaker daily_loss_pct: daily loss {pct:.2f}% of start-of-day equity {start:.2f} reached the limit {s.max_daily_loss_pct}%"))
        if s.max_drawdown_pct is not None and drawdown_pct >= s.max_drawdown_pct:
            trips.append(Trip("drawdown", TradingState(s.drawdown_action),
                              f"breaker drawdown: {drawdown_pct:.2f}% below the equity peak {peak:.2f} reached the limit {s.max_drawdown_pct}%"))
        if s.max_consecutive_losses is not None and self.consecutive_losses >= s.max_consecutive_losses:
            trips.append(Trip("consecutive_losses", TradingState(s.consecutive_losses_action),
                              f"breaker consecutive_losses: {self.consecutive_losses} losing trades in a row reached the limit {s.max_consecutive_losses}"))
        if s.max_rejects_per_minute is not None:
            n = self.rejects_last_minute(now)
            if n >= s.max_rejects_per_minute:
                trips.append(Trip("rejects", TradingState(s.rejects_action),
                                  f"breaker rejects: {n} order rejects in the last minute reached the limit {s.max_rejects_per_minute}"))
        return trips
