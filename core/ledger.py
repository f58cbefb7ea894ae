"""Positions and PnL from fills, for one account.

Average-cost accounting kept as a signed *cost basis* (sum of signed amount x price of what is
still open) rather than an average price: the only division happens when part of a position is
closed, and the same rounded figure leaves the cost basis and enters realized PnL, so
``cash change + mark value == realized + unrealized - fees`` holds exactly, in Decimal, for any
sequence of fills (tests/test_ledger_property.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from core.models import ZERO, AccountStatus, Fill, Position, PositionSide, TradingState
from core.numbers import clean

_COST_PLACES = Decimal("1e-12")  # precision of the cost basis left after a partial close
_PRICE_PLACES = Decimal("1e-8")
MAINTENANCE_MARGIN_RATE = Decimal("0.005")


@dataclass(slots=True)
class _Book:
    symbol: str
    qty: Decimal = ZERO  # signed: > 0 long, < 0 short
    cost: Decimal = ZERO  # signed cost basis of the open quantity
    mark: Decimal = ZERO
    leverage: Decimal = Decimal(1)
    realized: Decimal = ZERO
    fees: Decimal = ZERO
    opened_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def unrealized(self) -> Decimal:
        if self.qty == 0 or self.mark == 0:
            return ZERO
        return self.qty * self.mark - self.cost

    def entry_price(self) -> Decimal:
        if self.qty == 0:
            return ZERO
        return clean((self.cost / self.qty).quantize(_PRICE_PLACES))

    def notional(self) -> Decimal:
        return abs(self.qty) * (self.mark or self.entry_price())


@dataclass(slots=True)
class Ledger:
    account: str = "paper"
    currency: str = "USDT"
    initial_balance: Decimal = Decimal(100_000)
    balance: Decimal = ZERO  # cash: initial + realized - fees
    realized: Decimal = ZERO
    fees: Decimal = ZERO
    equity_peak: Decimal = ZERO
    day: date | None = None
    day_start_equity: Decimal = ZERO
    books: dict[str, _Book] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.balance == 0 and self.realized == 0 and self.fees == 0:
            self.balance = self.initial_balance
        if self.equity_peak == 0:
            self.equity_peak = self.balance
        if self.day_start_equity == 0:
            self.day_start_equity = self.balance

    # -- updates -------------------------------------------------------------------------

    def apply_fill(self, fill: Fill, leverage: Decimal | None = None) -> Position:
        """Book one fill. The caller de-duplicates fills by id before calling. ``fill.fee`` is
        in the ledger's currency; ``fill.base_fee`` (base coin kept as fee) moves the position."""
        self._roll_day(fill.timestamp)
        book = self.books.get(fill.symbol)
        if book is None:
            book = self.books[fill.symbol] = _Book(fill.symbol)
        # a fee taken in the base coin leaves the holding short of the traded amount: the
        # position moves by what was really received or given up (its quote value is fill.fee)
        signed = fill.amount * fill.side.sign - fill.base_fee
        qty = book.qty
        realized = ZERO
        if qty == 0 or (qty > 0) == (signed > 0):
            book.cost += signed * fill.price
            if qty == 0:
                book.opened_at = fill.timestamp
                book.mark = fill.price  # a stale mark from an earlier position must not value this one
        elif abs(signed) <= abs(qty):
            closed = abs(signed)
            removed = book.cost if closed == abs(qty) else clean((book.cost * closed / abs(qty)).quantize(_COST_PLACES))
            realized = -signed * fill.price - removed
            book.cost -= removed
        else:  # flips: close all, open the rest at the fill price
            realized = qty * fill.price - book.cost
            rest = qty + signed
            book.cost = rest * fill.price
            book.opened_at = fill.timestamp
        book.qty = qty + signed
        if book.qty == 0:
            book.cost = ZERO
            book.opened_at = None
        if leverage is not None:
            book.leverage = leverage
        book.realized += realized
        book.fees += fill.fee
        book.mark = book.mark or fill.price
        book.updated_at = fill.timestamp
        self.realized += realized
        self.fees += fill.fee
        self.balance += realized - fill.fee
        self._track_peak()
        return self.position(fill.symbol)

    def mark(self, symbol: str, price: Decimal, now: datetime | None = None) -> Position | None:
        """Update the mark price; returns the position when one is open for the symbol."""
        if now is not None:
            self._roll_day(now)
        book = self.books.get(symbol)
        if book is None:
            return None
        book.mark = price
        self._track_peak()
        return self.position(symbol) if book.qty != 0 else None

    def _track_peak(self) -> None:
        eq = self.equity
        if eq > self.equity_peak:
            self.equity_peak = eq

    def _roll_day(self, now: datetime) -> None:
        today = now.astimezone(UTC).date()  # the trading day is the UTC day
        if self.day is None:
            self.day = today
        elif today > self.day:  # a late fill stamped yesterday must not roll the day back
            self.day_start_equity = self.equity
            self.day = today

    # -- reads ---------------------------------------------------------------------------

    @property
    def unrealized(self) -> Decimal:
        total = ZERO
        for b in self.books.values():
            if b.qty:
                total += b.unrealized
        return total

    @property
    def equity(self) -> Decimal:
        return self.balance + self.unrealized

    def position(self, symbol: str) -> Position:
        book = self.books.get(symbol) or _Book(symbol)
        qty = book.qty
        side = PositionSide.FLAT if qty == 0 else PositionSide.LONG if qty > 0 else PositionSide.SHORT
        entry = book.entry_price()
        liq = None
        if qty != 0 and (qty < 0 or book.leverage > 1):  # an unlevered long cannot be liquidated
            step = 1 / book.leverage - MAINTENANCE_MARGIN_RATE
            liq = clean((entry * (1 - step) if qty > 0 else entry * (1 + step)).quantize(_PRICE_PLACES))
        return Position(
            account=self.account,
            symbol=symbol,
            side=side,
            size=abs(qty),
            entry_price=entry,
            mark_price=book.mark,
            leverage=book.leverage,
            unrealized_pnl=book.unrealized,
            realized_pnl=book.realized,
            fees=book.fees,
            liquidation_price=liq,
            opened_at=book.opened_at,
            updated_at=book.updated_at,
        )

    def signed_size(self, symbol: str) -> Decimal:
        book = self.books.get(symbol)
        return book.qty if book else ZERO

    def positions(self, include_flat: bool = False) -> list[Position]:
        return [self.position(s) for s, b in sorted(self.books.items()) if include_flat or b.qty != 0]

    def used_margin(self) -> Decimal:
        total = ZERO
        for b in self.books.values():
            if b.qty:
                total += b.notional() / b.leverage
        return total

    def figures(self) -> tuple[Decimal, Decimal, Decimal]:
        """(equity, used margin, exposure) in one pass: what every risk check needs."""
        unrealized = used = exposure = ZERO
        for b in self.books.values():
            if b.qty:
                notional = b.notional()
                unrealized += b.unrealized
                used += notional / b.leverage
                exposure += notional
        return self.balance + unrealized, used, exposure

    def exposure(self) -> Decimal:
        return sum((b.notional() for b in self.books.values() if b.qty != 0), ZERO)

    def status(self, trading_state: TradingState = TradingState.ACTIVE, reserved: Decimal = ZERO) -> AccountStatus:
        """Account figures; ``reserved`` is margin held by open orders, which is not free."""
        equity = self.equity
        used = self.used_margin()
        drawdown = clean(max(self.equity_peak - equity, ZERO))
        dd_pct = (drawdown / self.equity_peak * 100).quantize(Decimal("0.0001")) if self.equity_peak > 0 else ZERO
        # model_construct: the ledger's own Decimals, published on every change (and validating
        # would build the validator during the console's start)
        return AccountStatus.model_construct(
            account=self.account,
            currency=self.currency,
            balance=self.balance,
            equity=equity,
            used_margin=used + reserved,
            free_margin=equity - used - reserved,
            exposure=self.exposure(),
            unrealized_pnl=self.unrealized,
            realized_pnl=self.realized,
            fees=self.fees,
            daily_pnl=equity - self.day_start_equity,
            equity_peak=self.equity_peak,
            drawdown=drawdown,
            drawdown_pct=dd_pct,
            open_positions=sum(1 for b in self.books.values() if b.qty != 0),
            trading_state=trading_state,
        )

    # -- persistence -------------------------------------------------------------------------

    def snapshot(self) -> dict[str, object]:
        """Everything needed to rebuild this ledger exactly (journalled as a projection)."""
        return {
            "account": self.account,
            "currency": self.currency,
            "initial_balance": str(self.initial_balance),
            "balance": str(self.balance),
            "realized": str(self.realized),
            "fees": str(self.fees),
            "equity_peak": str(self.equity_peak),
            "day": self.day.isoformat() if self.day else None,
            "day_start_equity": str(self.day_start_equity),
        }

    def book_snapshot(self, symbol: str) -> dict[str, object]:
        b = self.books[symbol]
        return {
            "symbol": b.symbol,
            "qty": str(b.qty),
            "cost": str(b.cost),
            "mark": str(b.mark),
            "leverage": str(b.leverage),
            "realized": str(b.realized),
            "fees": str(b.fees),
            "opened_at": b.opened_at.isoformat() if b.opened_at else None,
            "updated_at": b.updated_at.isoformat() if b.updated_at else None,
        }

    @classmethod
    def restore(cls, account: dict[str, object], books: list[dict[str, object]]) -> Ledger:
        def d(key: str, src: dict[str, object]) -> Decimal:
            return Decimal(str(src[key]))

        def t(value: object) -> datetime | None:
            return datetime.fromisoformat(str(value)) if value else None

        ledger = cls(account=str(account["account"]), currency=str(account["currency"]),
                     initial_balance=d("initial_balance", account))
        # assigned after construction: restored zeros are real values, not "unset" defaults
        ledger.balance = d("balance", account)
        ledger.realized = d("realized", account)
        ledger.fees = d("fees", account)
        ledger.equity_peak = d("equity_peak", account)
        ledger.day = date.fromisoformat(str(account["day"])) if account.get("day") else None
        ledger.day_start_equity = d("day_start_equity", account)
        for raw in books:
            sym = str(raw["symbol"])
            ledger.books[sym] = _Book(
                symbol=sym,
                qty=d("qty", raw),
                cost=d("cost", raw),
                mark=d("mark", raw),
                leverage=d("leverage", raw),
                realized=d("realized", raw),
                fees=d("fees", raw),
                opened_at=t(raw.get("opened_at")),
                updated_at=t(raw.get("updated_at")),
            )
        return ledger
