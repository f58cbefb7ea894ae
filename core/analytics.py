"""Trade analytics from the journal: round trips, PnL statistics and execution quality.

Pure: built from ``Fill`` and ``Order`` models, it reads no file and no clock (``now`` is passed
in). Money is ``Decimal``; only ratios (win rate, profit factor, Sharpe, Sortino, exposure,
drawdown %) are floats.

Definitions
-----------
round trip    per (account, symbol): opens when the position leaves zero and closes when it
              returns to zero or flips. A flip closes one trip and opens the next at the flip
              fill's price; that fill's fee is split pro rata to the amounts closed and opened.
              Adds and partial closes stay in the open trip. Sizes are net of ``base_fee``
              (the base coin kept as fee), as the ledger moves the position.
PnL           realized PnL as the ledger books it (average cost, ``core.ledger``) minus fees;
              fees count in the quote currency, as the ledger counts them.
per-day PnL   net PnL of the fills of each UTC day.
equity        starting equity + net PnL so far, stepped at each fill. Marks are not journaled,
              so an open position is not valued: this is realized equity.
daily return  the day's net PnL / equity at the start of that day. Every UTC day of the period
              counts, a day without fills as 0 (crypto trades every day).
Sharpe        mean(daily returns) / sample stdev(daily returns) * sqrt(365); risk-free rate 0.
Sortino       mean(daily returns) / downside deviation * sqrt(365), where the downside
              deviation is sqrt(sum(min(r, 0)^2) / n) over all n days (target return 0).
              Both are None with fewer than 2 days, or when the deviation is 0 (every day
              alike; for Sortino, no losing day): the ratio is undefined, not zero.
max drawdown  the largest fall of the equity curve from its running peak, in money, and the
              largest such fall in % of the peak it fell from.
exposure      the share of the period during which any position was non-zero.
period        ``since`` inclusive, ``until`` exclusive. The whole history is replayed, so a trip
              opened before ``since`` keeps its entry; then per-day and total PnL, the equity
              curve, drawdown and exposure cover the fills inside the period, trips count when
              they close inside it (trips still open are listed but not counted), and execution
              quality covers the orders submitted inside it. Without ``since`` the period starts
              at its first fill; without ``until`` it ends at ``now`` when given, else at the
              last fill.

Execution quality, per order submitted to a venue
-------------------------------------------------
ack latency       acked_at - submitted_at.
first/full fill   time from the ack to the first fill, and to the fill that completed the order
                  (None while it is not complete). A fill that came with the submit answer
                  counts as 0, never as negative.
slippage          average fill price vs ``submit_mark`` (the last price when the order was sent),
                  per unit and in basis points of the mark, signed so that positive is worse for
                  the trader: a buy above the mark, a sell below it.
maker share       maker notional / filled notional.
The aggregate weights slippage by amount: sum(slippage x filled) / sum(mark x filled).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from core.journal import JournalContents
from core.ledger import Ledger
from core.models import ZERO, Fill, Liquidity, Order, PositionSide
from core.numbers import clean

_PRICE_PLACES = Decimal("1e-8")
_BPS_PLACES = Decimal("0.01")
_ANNUAL = math.sqrt(365)


def utc(t: datetime) -> datetime:
    """An aware UTC time (a naive one is taken as UTC: the journal writes UTC)."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Period:
    """``since`` inclusive, ``until`` exclusive; None leaves that side open."""

    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.since is not None:
            object.__setattr__(self, "since", utc(self.since))
        if self.until is not None:
            object.__setattr__(self, "until", utc(self.until))
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise ValueError(f"period: until ({self.until.isoformat()}) must be after since ({self.since.isoformat()})")

    def contains(self, t: datetime) -> bool:
        t = utc(t)
        return (self.since is None or t >= self.since) and (self.until is None or t < self.until)


@dataclass(slots=True)
class RoundTrip:
    account: str
    symbol: str
    side: PositionSide  # long or short
    opened_at: datetime
    closed_at: datetime | None = None
    max_size: Decimal = ZERO  # the largest absolute position during the trip
    realized: Decimal = ZERO
    fees: Decimal = ZERO
    fills: int = 0
    entry_amount: Decimal = ZERO
    entry_notional: Decimal = ZERO
    exit_amount: Decimal = ZERO
    exit_notional: Decimal = ZERO

    @property
    def pnl(self) -> Decimal:
        """Realized PnL net of fees."""
        return self.realized - self.fees

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    @property
    def entry_price(self) -> Decimal:
        return _avg(self.entry_notional, self.entry_amount) or ZERO

    @property
    def exit_price(self) -> Decimal | None:
        return _avg(self.exit_notional, self.exit_amount)

    @property
    def duration(self) -> timedelta | None:
        return None if self.closed_at is None else self.closed_at - self.opened_at

    def _enter(self, amount: Decimal, price: Decimal) -> None:
        self.entry_amount += amount
        self.entry_notional += amount * price

    def _exit(self, amount: Decimal, price: Decimal) -> None:
        self.exit_amount += amount
        self.exit_notional += amount * price


@dataclass(frozen=True, slots=True)
class Execution:
    """How one order was executed (see the module docstring for the definitions)."""

    order: Order
    filled: Decimal
    average_price: Decimal | None
    fees: Decimal
    maker_notional: Decimal
    taker_notional: Decimal
    ack_latency: timedelta | None
    first_fill_after: timedelta | None
    complete_fill_after: timedelta | None
    slippage: Decimal | None  # per unit; positive = worse than the mark
    slippage_bps: Decimal | None

    @property
    def maker_share(self) -> float | None:
        total = self.maker_notional + self.taker_notional
        return float(self.maker_notional / total) if total else None


@dataclass(frozen=True, slots=True)
class ExecutionSummary:
    orders: int  # submitted to a venue in the period
    filled_orders: int  # of those, with at least one fill
    ack_latency_mean: timedelta | None
    ack_latency_median: timedelta | None
    ack_latency_max: timedelta | None
    first_fill_median: timedelta | None
    complete_fill_median: timedelta | None
    slippage_cost: Decimal  # sum of slippage x filled: positive = paid against the marks
    slippage_bps: Decimal | None
    fees: Decimal
    maker_share: float | None


@dataclass(frozen=True, slots=True)
class TradeReport:
    period: Period
    start: datetime | None
    end: datetime | None
    starting_equity: Decimal  # at the start of the period
    trips: list[RoundTrip]  # closed in the period, then those still open
    wins: int
    losses: int
    win_rate: float | None
    avg_win: Decimal | None
    avg_loss: Decimal | None  # negative
    profit_factor: float | None  # gross win / gross loss; None without a losing trip
    realized: Decimal  # gross, fills in the period
    fees: Decimal
    total_pnl: Decimal  # realized - fees
    daily: list[tuple[date, Decimal]]
    returns: list[float]
    sharpe: float | None
    sortino: float | None
    equity_curve: list[tuple[datetime, Decimal]]
    max_drawdown: Decimal
    max_drawdown_pct: float | None
    exposure_time: timedelta
    exposure: float | None  # share of the period, 0..1
    executions: list[Execution]
    execution: ExecutionSummary

    @property
    def closed_trips(self) -> list[RoundTrip]:
        return [t for t in self.trips if not t.is_open]

    @property
    def ending_equity(self) -> Decimal:
        return self.equity_curve[-1][1] if self.equity_curve else self.starting_equity


@dataclass(slots=True)
class _Booked:
    fill: Fill
    at: datetime
    net: Decimal  # realized - fee
    realized: Decimal


@dataclass(slots=True)
class _Replay:
    booked: list[_Booked] = field(default_factory=list)
    trips: list[RoundTrip] = field(default_factory=list)
    exposure: list[tuple[datetime, datetime | None]] = field(default_factory=list)  # any position open


class TradeRecorder:
    """Replays fills (in time order) into round trips, PnL and an equity curve; ``report`` cuts
    the figures for a period. ``orders`` feed execution quality."""

    def __init__(self, fills: Iterable[Fill], orders: Iterable[Order] = (), *, starting_equity: Decimal) -> None:
        self.starting_equity = starting_equity
        # stable sort: fills with the same timestamp keep the journal's order
        self.fills = sorted(fills, key=lambda f: utc(f.timestamp))
        self.orders = list(orders)
        self._replay = _replay(self.fills)

    @classmethod
    def from_journal(cls, contents: JournalContents) -> TradeRecorder:
        """From ``Journal.load()`` or ``read_journal()``: starting equity is the sum of every
        account's initial balance."""
        equity = sum((Decimal(str(a.get("initial_balance", 0))) for a in contents.accounts.values()), ZERO)
        return cls(contents.fills, contents.orders, starting_equity=equity)

    @property
    def trips(self) -> list[RoundTrip]:
        return list(self._replay.trips)

    def report(self, period: Period | None = None, *, now: datetime | None = None) -> TradeReport:
        period = period or Period()
        booked = self._replay.booked
        inside = [b for b in booked if period.contains(b.at)]
        before = sum((b.net for b in booked if period.since is not None and b.at < period.since), ZERO)
        start_equity = self.starting_equity + before
        start = period.since or (inside[0].at if inside else None)
        end = period.until or (utc(now) if now is not None else (inside[-1].at if inside else None))
        if start is not None and end is not None and end < start:
            end = start

        curve = _equity_curve(start, start_equity, inside)
        daily = _daily(start, end, inside)
        returns = _returns(daily, start_equity)
        dd, dd_pct = max_drawdown([e for _, e in curve])
        exposed = _exposure(self._replay.exposure, start, end)
        span = (end - start) if start is not None and end is not None else timedelta(0)

        closed = [t for t in self._replay.trips if t.closed_at is not None and period.contains(t.closed_at)]
        still_open = [t for t in self._replay.trips if t.is_open and (period.until is None or t.opened_at < period.until)]
        wins = [t.pnl for t in closed if t.pnl > 0]
        losses = [t.pnl for t in closed if t.pnl < 0]
        gross_win, gross_loss = sum(wins, ZERO), -sum(losses, ZERO)
        realized = sum((b.realized for b in inside), ZERO)
        fees = sum((b.fill.fee for b in inside), ZERO)

        executions = self._executions(period)
        return TradeReport(
            period=period,
            start=start,
            end=end,
            starting_equity=start_equity,
            trips=closed + still_open,
            wins=len(wins),
            losses=len(losses),
            win_rate=len(wins) / len(closed) if closed else None,
            avg_win=_avg(gross_win, Decimal(len(wins))),
            avg_loss=_avg(-gross_loss, Decimal(len(losses))),
            profit_factor=float(gross_win / gross_loss) if gross_loss else None,
            realized=realized,
            fees=fees,
            total_pnl=realized - fees,
            daily=daily,
            returns=returns,
            sharpe=sharpe(returns),
            sortino=sortino(returns),
            equity_curve=curve,
            max_drawdown=dd,
            max_drawdown_pct=dd_pct,
            exposure_time=exposed,
            exposure=exposed / span if span > timedelta(0) else None,
            executions=executions,
            execution=summarize_executions(executions),
        )

    def _executions(self, period: Period) -> list[Execution]:
        by_order: dict[str, list[Fill]] = {}
        for f in self.fills:
            by_order.setdefault(f.order_id, []).append(f)
        return [
            execution(o, by_order.get(o.id, []))
            for o in self.orders
            if o.submitted_at is not None and period.contains(o.submitted_at)
        ]


# -- the replay ----------------------------------------------------------------------------------


def _replay(fills: Sequence[Fill]) -> _Replay:
    out = _Replay()
    ledgers: dict[str, Ledger] = {}
    open_trips: dict[tuple[str, str], RoundTrip] = {}
    open_books = 0
    for fill in fills:
        at = utc(fill.timestamp)
        ledger = ledgers.get(fill.account)
        if ledger is None:
            ledger = ledgers[fill.account] = Ledger(account=fill.account, initial_balance=ZERO)
        before_qty = ledger.signed_size(fill.symbol)
        before_realized = ledger.realized
        ledger.apply_fill(fill)  # the ledger's own arithmetic: these figures match the console's
        realized = ledger.realized - before_realized
        after_qty = ledger.signed_size(fill.symbol)
        out.booked.append(_Booked(fill, at, realized - fill.fee, realized))

        key = (fill.account, fill.symbol)
        # the position moves by the net amount, as in the ledger: a fee kept in the base coin
        # leaves a buy short of what it traded (and a sell gives up more), so sizes, closing and
        # the fee share of a flip all count what really moved
        signed = fill.amount * fill.side.sign - fill.base_fee
        size = abs(signed)
        trip = open_trips.get(key)
        if signed == 0:  # the whole amount went as fee: nothing opened or closed
            if trip is not None:
                trip.fees += fill.fee
                trip.fills += 1
        elif before_qty == 0 or (before_qty > 0) == (signed > 0):  # opens or adds
            if trip is None:
                trip = open_trips[key] = _open_trip(fill, at, signed)
                out.trips.append(trip)
            trip._enter(size, fill.price)
            trip.fees += fill.fee
            trip.fills += 1
        else:  # reduces, closes or flips
            assert trip is not None
            closed = min(size, abs(before_qty))
            fee_closing = fill.fee if closed == size else fill.fee * closed / size
            trip._exit(closed, fill.price)
            trip.realized += realized
            trip.fees += fee_closing
            trip.fills += 1
            if after_qty == 0 or (after_qty > 0) != (before_qty > 0):
                trip.closed_at = at
                del open_trips[key]
            if after_qty != 0 and (after_qty > 0) != (before_qty > 0):  # the flip opens the next trip
                trip = open_trips[key] = _open_trip(fill, at, after_qty)
                trip._enter(abs(after_qty), fill.price)
                trip.fees += fill.fee - fee_closing
                trip.fills += 1
                out.trips.append(trip)
        current = open_trips.get(key)
        if current is not None:
            current.max_size = max(current.max_size, abs(after_qty))

        # exposure: the union of the times any book is non-zero
        if before_qty == 0 and after_qty != 0:
            if open_books == 0:
                out.exposure.append((at, None))
            open_books += 1
        elif before_qty != 0 and after_qty == 0:
            open_books -= 1
            if open_books == 0:
                out.exposure[-1] = (out.exposure[-1][0], at)
    return out


def _open_trip(fill: Fill, at: datetime, signed: Decimal) -> RoundTrip:
    side = PositionSide.LONG if signed > 0 else PositionSide.SHORT
    return RoundTrip(account=fill.account, symbol=fill.symbol, side=side, opened_at=at)


# -- figures -------------------------------------------------------------------------------------


def _avg(total: Decimal, count: Decimal) -> Decimal | None:
    return clean((total / count).quantize(_PRICE_PLACES)) if count else None


def _equity_curve(start: datetime | None, equity: Decimal, inside: list[_Booked]) -> list[tuple[datetime, Decimal]]:
    if start is None:
        return []
    curve = [(start, equity)]
    for b in inside:
        equity += b.net
        curve.append((b.at, equity))
    return curve


def _daily(start: datetime | None, end: datetime | None, inside: list[_Booked]) -> list[tuple[date, Decimal]]:
    if start is None or end is None:
        return []
    last = end.date()
    if end > start and end == datetime.combine(last, datetime.min.time(), UTC):
        last -= timedelta(days=1)  # ``until`` is exclusive: a period ending at midnight ends the day before
    pnl: dict[date, Decimal] = {}
    for b in inside:
        pnl[b.at.date()] = pnl.get(b.at.date(), ZERO) + b.net
    days = []
    day = start.date()
    while day <= last:
        days.append((day, pnl.get(day, ZERO)))
        day += timedelta(days=1)
    return days


def _returns(daily: list[tuple[date, Decimal]], equity: Decimal) -> list[float]:
    out = []
    for _, pnl in daily:
        if equity <= 0:
            return []  # no equity, no return: Sharpe and Sortino stay undefined
        out.append(float(pnl / equity))
        equity += pnl
    return out


def sharpe(returns: Sequence[float]) -> float | None:
    """Annualised Sharpe of daily returns (risk-free 0); None below 2 days or with no spread."""
    if len(returns) < 2:
        return None
    sd = statistics.stdev(returns)
    return statistics.fmean(returns) / sd * _ANNUAL if sd > 0 else None


def sortino(returns: Sequence[float]) -> float | None:
    """Annualised Sortino of daily returns (target 0); None below 2 days or with no losing day."""
    if len(returns) < 2:
        return None
    downside = math.sqrt(sum(min(r, 0.0) ** 2 for r in returns) / len(returns))
    return statistics.fmean(returns) / downside * _ANNUAL if downside > 0 else None


def max_drawdown(equity: Sequence[Decimal]) -> tuple[Decimal, float | None]:
    """(largest fall from a running peak, largest fall in % of its peak); % is None without a
    positive peak."""
    peak: Decimal | None = None
    worst, worst_pct = ZERO, None
    for e in equity:
        peak = e if peak is None or e > peak else peak
        fall = peak - e
        worst = max(worst, fall)
        if peak > 0:
            pct = float(fall / peak * 100)
            worst_pct = pct if worst_pct is None else max(worst_pct, pct)
    return worst, worst_pct


def _exposure(intervals: list[tuple[datetime, datetime | None]], start: datetime | None,
              end: datetime | None) -> timedelta:
    if start is None or end is None:
        return timedelta(0)
    total = timedelta(0)
    for opened, closed in intervals:
        lo, hi = max(opened, start), min(closed or end, end)
        if hi > lo:
            total += hi - lo
    return total


# -- execution quality ---------------------------------------------------------------------------


def execution(order: Order, fills: Sequence[Fill]) -> Execution:
    """Execution quality of one order from its fills (see the module docstring)."""
    fills = sorted(fills, key=lambda f: utc(f.timestamp))
    filled = sum((f.amount for f in fills), ZERO)
    notional = sum((f.amount * f.price for f in fills), ZERO)
    maker = sum((f.amount * f.price for f in fills if f.liquidity is Liquidity.MAKER), ZERO)
    average = _avg(notional, filled)
    submitted = utc(order.submitted_at) if order.submitted_at else None
    acked = utc(order.acked_at) if order.acked_at else None
    ack_latency = acked - submitted if acked and submitted else None
    since = acked or submitted
    first = complete = None
    if fills and since is not None:
        first = max(utc(fills[0].timestamp) - since, timedelta(0))
        if filled >= order.amount:
            complete = max(utc(fills[-1].timestamp) - since, timedelta(0))
    slip = bps = None
    mark = order.submit_mark
    if average is not None and mark:
        slip = (average - mark) * order.side.sign
        bps = (slip / mark * 10_000).quantize(_BPS_PLACES)
    return Execution(
        order=order, filled=filled, average_price=average, fees=sum((f.fee for f in fills), ZERO),
        maker_notional=maker, taker_notional=notional - maker, ack_latency=ack_latency,
        first_fill_after=first, complete_fill_after=complete, slippage=slip, slippage_bps=bps,
    )


def summarize_executions(executions: Sequence[Execution]) -> ExecutionSummary:
    acks = [e.ack_latency for e in executions if e.ack_latency is not None]
    firsts = [e.first_fill_after for e in executions if e.first_fill_after is not None]
    completes = [e.complete_fill_after for e in executions if e.complete_fill_after is not None]
    slipped = [e for e in executions if e.slippage is not None]
    cost = sum((e.slippage * e.filled for e in slipped), ZERO)  # type: ignore[operator]
    marks = sum((e.order.submit_mark * e.filled for e in slipped), ZERO)  # type: ignore[operator]
    maker = sum((e.maker_notional for e in executions), ZERO)
    total = maker + sum((e.taker_notional for e in executions), ZERO)
    return ExecutionSummary(
        orders=len(executions),
        filled_orders=sum(1 for e in executions if e.filled > 0),
        ack_latency_mean=sum(acks, timedelta(0)) / len(acks) if acks else None,
        ack_latency_median=statistics.median(acks) if acks else None,
        ack_latency_max=max(acks) if acks else None,
        first_fill_median=statistics.median(firsts) if firsts else None,
        complete_fill_median=statistics.median(completes) if completes else None,
        slippage_cost=cost,
        slippage_bps=(cost / marks * 10_000).quantize(_BPS_PLACES) if marks else None,
        fees=sum((e.fees for e in executions), ZERO),
        maker_share=float(maker / total) if total else None,
    )
