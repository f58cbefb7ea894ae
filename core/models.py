"""The domain model: requests, orders, fills, positions and account figures.

Every price, amount and money value is a ``Decimal``. Floats are refused here on purpose: a
float that reaches the core is a bug at a venue boundary, which must convert with
``Decimal(str(x))`` (see ``core.numbers.to_decimal``).
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from operator import attrgetter
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from core.numbers import to_decimal


def _decimal_in(value: Any) -> Any:
    if type(value) is Decimal:  # the common case (every engine-built order): nothing to convert
        return value
    if isinstance(value, float):
        raise ValueError(f"floats are not accepted for money or amounts, got {value!r}: pass a Decimal or a string")
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            return to_decimal(value)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
    return value


Dec = Annotated[Decimal, BeforeValidator(_decimal_in)]
"""A Decimal field that takes Decimal, int or a numeric string, never a float."""

ZERO = Decimal(0)
_SYMBOL = re.compile(r"[A-Z0-9]+/[A-Z0-9]+(:[A-Z0-9]+)?")  # ccxt's unified form, e.g. BTC/USDT:USDT


class FastStrEnum(StrEnum):
    """A StrEnum whose ``value`` is a plain attribute read. Enum's own is a Python-level
    descriptor (~0.25 us), and pydantic reads it for every enum field it serialises: an order
    has four, and the order path serialises each order twice."""

    value = property(attrgetter("_value_"))  # type: ignore[assignment]


class Side(FastStrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(FastStrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"
    TAKE_PROFIT = "take_profit"  # triggers at stop_price in the position's favour; with a price it works as a limit

    @property
    def needs_price(self) -> bool:
        return self in (OrderType.LIMIT, OrderType.STOP_LIMIT)

    @property
    def needs_trigger(self) -> bool:
        return self in (OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT)


class TimeInForce(FastStrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    PO = "PO"  # post-only: refused if it would take liquidity


class OrderStatus(FastStrEnum):
    NEW = "new"
    SUBMITTING = "submitting"
    UNRESOLVED = "unresolved"  # sent, answer lost: settled by a lookup by client order id
    OPEN = "open"
    TRIGGERED = "triggered"
    PARTIALLY_FILLED = "partially_filled"
    CANCELLING = "cancelling"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES

    @property
    def is_live(self) -> bool:
        return self not in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED, OrderStatus.FAILED}
)


class PositionSide(FastStrEnum):
    LONG = "long"
    SHORT = "short"
    FLAT = "flat"


class TradingState(FastStrEnum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class Liquidity(FastStrEnum):
    MAKER = "maker"
    TAKER = "taker"


_MODEL_CONFIG = ConfigDict(extra="forbid", validate_assignment=False, use_enum_values=False, defer_build=True)


class OrderRequest(BaseModel):
    """What a client asks for. Validation errors name the field and the rule."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    symbol: str = Field(min_length=1)
    side: Side
    type: OrderType = OrderType.MARKET
    amount: Dec
    price: Dec | None = None
    stop_price: Dec | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    leverage: Dec = Decimal(1)
    client_order_id: str | None = Field(default=None, min_length=1, max_length=32, pattern=r"^[A-Za-z0-9]+$")
    tag: str | None = None
    account: str | None = None

    @field_validator("symbol")
    @classmethod
    def _symbol_shape(cls, v: str) -> str:
        v = v.strip().upper()
        if not _SYMBOL.fullmatch(v):
            raise ValueError(f"symbol must look like BASE/QUOTE (e.g. BTC/USDT), got {v!r}")
        return v

    @field_validator("amount")
    @classmethod
    def _amount_positive(cls, v: Decimal) -> Decimal:
        if not v.is_finite():
            raise ValueError(f"amount must be a finite number, got {v}")
        if v <= 0:
            raise ValueError(f"amount must be > 0, got {v}")
        return v

    @field_validator("price", "stop_price")
    @classmethod
    def _price_positive(cls, v: Decimal | None, info: Any) -> Decimal | None:
        if v is None:
            return v
        if not v.is_finite():
            raise ValueError(f"{info.field_name} must be a finite number, got {v}")
        if v <= 0:
            raise ValueError(f"{info.field_name} must be > 0, got {v}")
        return v

    @field_validator("leverage")
    @classmethod
    def _leverage_range(cls, v: Decimal) -> Decimal:
        if not v.is_finite() or v < 1:
            raise ValueError(f"leverage must be >= 1, got {v}")
        return v

    @model_validator(mode="after")
    def _type_rules(self) -> OrderRequest:
        problems = []
        if self.type.needs_price and self.price is None:
            problems.append(f"price is required for a {self.type.value} order")
        if self.type is OrderType.MARKET and self.price is not None:
            problems.append("price must be empty for a market order (use a limit order to cap the price)")
        if self.type is OrderType.STOP and self.price is not None:
            problems.append("price must be empty for a stop order (use stop_limit for a limit after the trigger)")
        if self.type.needs_trigger and self.stop_price is None:
            problems.append(f"stop_price is required for a {self.type.value} order")
        if not self.type.needs_trigger and self.stop_price is not None:
            problems.append(f"stop_price only applies to stop, stop_limit and take_profit orders, not {self.type.value}")
        if self.time_in_force is TimeInForce.PO and self.type is not OrderType.LIMIT:
            problems.append("post-only (PO) applies to limit orders only")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def notional_price(self) -> Decimal | None:
        """The price that best describes the order's notional before it fills."""
        return self.price if self.price is not None else self.stop_price


class Order(BaseModel):
    """An order the engine tracks: the request plus everything learned since."""

    model_config = _MODEL_CONFIG

    id: str
    client_order_id: str
    account: str = "paper"
    venue_order_id: str | None = None
    symbol: str
    side: Side
    type: OrderType
    amount: Dec
    price: Dec | None = None
    stop_price: Dec | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    leverage: Dec = Decimal(1)
    tag: str | None = None
    status: OrderStatus = OrderStatus.NEW
    filled: Dec = ZERO
    average_price: Dec | None = None
    fee: Dec = ZERO
    fee_currency: str | None = None
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None = None
    acked_at: datetime | None = None
    submit_mark: Dec | None = None  # last price when it was sent: slippage is measured against it
    error: str | None = None
    emulated: bool = False
    sent_at: datetime | None = None  # emulated: when it triggered and went to the exchange (acked_at: held)
    revision: int = 0  # bumped on every change, so a subscriber can drop a stale snapshot

    @classmethod
    def from_request(cls, request: OrderRequest, *, id: str, account: str, now: datetime) -> Order:
        r = request.__dict__
        if (type(r["side"]) is Side and type(r["type"]) is OrderType and type(r["time_in_force"]) is TimeInForce
                and type(r["amount"]) is Decimal and type(r["leverage"]) is Decimal
                and (r["price"] is None or type(r["price"]) is Decimal)
                and (r["stop_price"] is None or type(r["stop_price"]) is Decimal)
                and type(r["reduce_only"]) is bool and type(now) is datetime):
            # A validated request holds exactly the types an order does: validating them again
            # cost ~4 us of every order's path. Anything else (a request built with
            # ``model_construct``) is validated below.
            d = _order_template()
            d["id"] = id
            d["client_order_id"] = r["client_order_id"] or id
            d["account"] = r["account"] or account
            for name in _FROM_REQUEST:
                d[name] = r[name]
            d["created_at"] = d["updated_at"] = now
            order = cls.__new__(cls)
            _set = object.__setattr__
            _set(order, "__dict__", d)
            _set(order, "__pydantic_fields_set__", set(_FIELDS_SET))
            _set(order, "__pydantic_extra__", None)
            _set(order, "__pydantic_private__", None)
            return order
        return cls(
            id=id,
            client_order_id=request.client_order_id or id,
            account=request.account or account,
            symbol=request.symbol,
            side=request.side,
            type=request.type,
            amount=request.amount,
            price=request.price,
            stop_price=request.stop_price,
            time_in_force=request.time_in_force,
            reduce_only=request.reduce_only,
            leverage=request.leverage,
            tag=request.tag,
            created_at=now,
            updated_at=now,
        )

    @property
    def remaining(self) -> Decimal:
        return self.amount - self.filled

    @property
    def is_final(self) -> bool:
        return self.status.is_final

    def __copy__(self) -> Order:
        # pydantic's, without what an Order never has (extra fields, private attributes): the
        # engine hands out a copy of every order it answers with or publishes
        copied = type(self).__new__(type(self))
        _set = object.__setattr__
        _set(copied, "__dict__", self.__dict__.copy())
        _set(copied, "__pydantic_extra__", None)
        _set(copied, "__pydantic_fields_set__", set(self.__pydantic_fields_set__))
        _set(copied, "__pydantic_private__", None)
        return copied


_FROM_REQUEST = ("symbol", "side", "type", "amount", "price", "stop_price", "time_in_force", "reduce_only", "leverage", "tag")
_FIELDS_SET = frozenset(("id", "client_order_id", "account", "created_at", "updated_at", *_FROM_REQUEST))
_TEMPLATE: dict[str, Any] = {}


def _order_template() -> dict[str, Any]:
    """A fresh ``__dict__`` for an Order: every field in declaration order, at its default."""
    if not _TEMPLATE:
        for name, info in Order.model_fields.items():
            _TEMPLATE[name] = None if info.is_required() else info.get_default(call_default_factory=True)
    return _TEMPLATE.copy()


class Fill(BaseModel):
    """One execution. ``id`` is the venue's trade id: fills are de-duplicated by it."""

    model_config = _MODEL_CONFIG

    id: str
    order_id: str
    client_order_id: str
    account: str = "paper"
    symbol: str
    side: Side
    amount: Dec
    price: Dec
    fee: Dec = ZERO
    fee_currency: str = "USDT"
    # base coin the venue kept as fee (spot buys on OKX, Binance): the holding moves by
    # amount - base_fee on a buy, amount + base_fee on a sell; ``fee`` is its value in the quote
    base_fee: Dec = ZERO
    liquidity: Liquidity = Liquidity.TAKER
    timestamp: datetime

    @property
    def notional(self) -> Decimal:
        return self.amount * self.price


class Position(BaseModel):
    model_config = _MODEL_CONFIG

    account: str = "paper"
    symbol: str
    side: PositionSide = PositionSide.FLAT
    size: Dec = ZERO  # always >= 0; the side says the direction
    entry_price: Dec = ZERO
    mark_price: Dec = ZERO
    leverage: Dec = Decimal(1)
    unrealized_pnl: Dec = ZERO
    realized_pnl: Dec = ZERO
    fees: Dec = ZERO
    liquidation_price: Dec | None = None
    opened_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def signed_size(self) -> Decimal:
        return -self.size if self.side is PositionSide.SHORT else self.size

    @property
    def notional(self) -> Decimal:
        return self.size * (self.mark_price or self.entry_price)


class Balance(BaseModel):
    model_config = _MODEL_CONFIG

    currency: str = "USDT"
    total: Dec = ZERO
    free: Dec = ZERO
    used: Dec = ZERO


class AccountStatus(BaseModel):
    model_config = _MODEL_CONFIG

    account: str = "paper"
    currency: str = "USDT"
    balance: Dec  # cash: deposits + realized PnL - fees
    equity: Dec  # balance + unrealized PnL
    used_margin: Dec
    free_margin: Dec
    exposure: Dec  # sum of position notionals at mark
    unrealized_pnl: Dec
    realized_pnl: Dec
    fees: Dec
    daily_pnl: Dec
    equity_peak: Dec
    drawdown: Dec
    drawdown_pct: Dec
    open_positions: int
    trading_state: TradingState = TradingState.ACTIVE


class Market(BaseModel):
    """What a venue says about a symbol: precision and limits feed validation and risk."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    symbol: str
    base: str
    quote: str
    tick_size: Dec
    lot_size: Dec
    min_amount: Dec = ZERO
    max_amount: Dec | None = None
    min_notional: Dec = ZERO
    max_leverage: Dec = Decimal(20)
    # Fee rates as fractions (0.001 = 0.1 %), where the venue reports them for the market.
    maker_fee: Dec | None = None
    taker_fee: Dec | None = None

    def estimate_fee(self, notional: Decimal, *, maker: bool = False) -> Decimal | None:
        """The fee an order of ``notional`` would pay at this market's rate; None if unknown."""
        rate = self.maker_fee if maker else self.taker_fee
        return None if rate is None else notional * rate
