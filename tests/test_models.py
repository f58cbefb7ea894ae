"""Tests of the domain model (core.models) and the Decimal helpers (core.numbers)."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import ROUND_UP, Decimal

import pytest
from pydantic import ValidationError

from core.models import FINAL_STATUSES, Order, OrderRequest, OrderStatus, OrderType, Side, TimeInForce
from core.numbers import floor_to_step, is_multiple, round_to_step, to_decimal

BASE = {"symbol": "BTC/USDT", "side": "buy", "amount": "1"}


def req(**overrides) -> OrderRequest:
    return OrderRequest(**{**BASE, **overrides})


def errors(**overrides) -> list[dict]:
    with pytest.raises(ValidationError) as info:
        req(**overrides)
    return info.value.errors()


def messages(**overrides) -> str:
    return " | ".join(e["msg"] for e in errors(**overrides))


def fields(**overrides) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in errors(**overrides)}


# -- OrderRequest: the good cases ------------------------------------------------------------


def test_minimal_market_order_defaults():
    r = req()
    assert r.symbol == "BTC/USDT"
    assert r.side is Side.BUY
    assert r.type is OrderType.MARKET
    assert r.amount == Decimal("1")
    assert r.price is None and r.stop_price is None
    assert r.time_in_force is TimeInForce.GTC
    assert r.leverage == Decimal(1)
    assert r.reduce_only is False
    assert r.client_order_id is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0.1", Decimal("0.1")),
        ("0.30", Decimal("0.30")),
        ("1e-3", Decimal("0.001")),
        (3, Decimal(3)),
        (Decimal("0.123456789"), Decimal("0.123456789")),
    ],
)
def test_strings_ints_and_decimals_become_exact_decimals(raw, expected):
    r = req(amount=raw)
    assert isinstance(r.amount, Decimal)
    assert r.amount == expected


def test_string_decimal_keeps_its_exact_digits():
    r = req(type="limit", amount="0.1", price="65000.10")
    assert r.amount == Decimal("0.1")
    assert r.amount != Decimal(0.1)  # not routed through a binary float
    assert str(r.amount) == "0.1"
    assert str(r.price) == "65000.10"


def test_symbol_is_stripped_and_upper_cased():
    assert req(symbol=" eth/usdt ").symbol == "ETH/USDT"


def test_limit_stop_limit_stop_and_take_profit_valid_shapes():
    assert req(type="limit", price="100").price == Decimal(100)
    sl = req(type="stop_limit", price="100", stop_price="101")
    assert (sl.price, sl.stop_price) == (Decimal(100), Decimal(101))
    assert req(type="stop", stop_price="90").stop_price == Decimal(90)
    assert req(type="take_profit", stop_price="120").stop_price == Decimal(120)
    assert req(type="limit", price="100", time_in_force="PO").time_in_force is TimeInForce.PO


def test_notional_price_prefers_price_then_stop_price():
    assert req(type="limit", price="100").notional_price == Decimal(100)
    assert req(type="stop", stop_price="90").notional_price == Decimal(90)
    assert req().notional_price is None


def test_request_is_frozen():
    r = req()
    with pytest.raises(ValidationError):
        r.amount = Decimal(2)


# -- OrderRequest: errors name the field and the rule ----------------------------------------


def test_limit_without_price():
    assert "price is required for a limit order" in messages(type="limit")


def test_stop_limit_without_price():
    assert "price is required for a stop_limit order" in messages(type="stop_limit", stop_price="5")


@pytest.mark.parametrize("raw", [-1, "-1", Decimal(-1)])
def test_negative_amount(raw):
    errs = errors(amount=raw)
    assert len(errs) == 1
    assert errs[0]["loc"] == ("amount",)
    assert "amount must be > 0, got -1" in errs[0]["msg"]


def test_zero_amount():
    assert "amount must be > 0, got 0" in messages(amount="0")


@pytest.mark.parametrize("raw", ["NaN", "Infinity", Decimal("NaN"), Decimal("Infinity")])
def test_non_finite_amount_is_refused(raw):
    assert fields(amount=raw) == {"amount"}


def test_non_numeric_amount_is_refused():
    errs = errors(amount="abc")
    assert errs[0]["loc"] == ("amount",)
    assert "not a number: 'abc'" in errs[0]["msg"]


def test_bool_amount_is_refused():
    assert fields(amount=True) == {"amount"}


@pytest.mark.parametrize(("field", "value"), [("price", "-5"), ("price", "0"), ("stop_price", "-2")])
def test_price_and_stop_price_must_be_positive(field, value):
    extra = {"type": "stop_limit", "price": "10", "stop_price": "10", field: value}
    errs = errors(**extra)
    assert [e["loc"] for e in errs] == [(field,)]
    assert f"{field} must be > 0, got {value}" in errs[0]["msg"]


def test_stop_without_stop_price():
    assert "stop_price is required for a stop order" in messages(type="stop")


def test_take_profit_without_stop_price():
    assert "stop_price is required for a take_profit order" in messages(type="take_profit")


@pytest.mark.parametrize(
    ("field", "overrides"),
    [
        ("amount", {"amount": 0.1}),
        ("amount", {"amount": 1.0}),
        ("price", {"type": "limit", "price": 100.5}),
        ("stop_price", {"type": "stop", "stop_price": 90.0}),
        ("leverage", {"leverage": 2.0}),
    ],
)
def test_floats_are_refused_with_a_clear_message(field, overrides):
    errs = errors(**overrides)
    assert [e["loc"] for e in errs] == [(field,)]
    msg = errs[0]["msg"]
    assert "floats are not accepted" in msg
    assert "pass a Decimal or a string" in msg


@pytest.mark.parametrize("symbol", ["BTCUSDT", "btc-usdt", "   "])
def test_symbol_must_contain_a_slash(symbol):
    errs = errors(symbol=symbol)
    assert [e["loc"] for e in errs] == [("symbol",)]
    assert "symbol must look like BASE/QUOTE" in errs[0]["msg"]


def test_symbol_error_shows_the_normalised_value():
    assert "got 'BTCUSDT'" in messages(symbol="btcusdt")


def test_empty_symbol_is_refused():
    assert fields(symbol="") == {"symbol"}


@pytest.mark.parametrize(
    "overrides",
    [
        {"type": "market", "time_in_force": "PO"},
        {"type": "stop", "stop_price": "90", "time_in_force": "PO"},
        {"type": "stop_limit", "price": "90", "stop_price": "91", "time_in_force": "PO"},
    ],
)
def test_post_only_only_for_limit(overrides):
    assert "post-only (PO) applies to limit orders only" in messages(**overrides)


def test_stop_market_must_not_have_a_price():
    assert "price must be empty for a stop order" in messages(type="stop", stop_price="90", price="89")


def test_market_must_not_have_a_price():
    assert "price must be empty for a market order" in messages(price="100")


@pytest.mark.parametrize("type_", ["market", "limit"])
def test_stop_price_only_for_triggered_types(type_):
    extra = {"price": "100"} if type_ == "limit" else {}
    msg = messages(type=type_, stop_price="90", **extra)
    assert f"stop_price only applies to stop, stop_limit and take_profit orders, not {type_}" in msg


def test_type_rule_problems_are_reported_together():
    msg = messages(type="stop", price="5")
    assert "price must be empty for a stop order" in msg
    assert "stop_price is required for a stop order" in msg


@pytest.mark.parametrize("coid", ["abc123", "A" * 32, "x"])
def test_client_order_id_valid(coid):
    assert req(client_order_id=coid).client_order_id == coid


@pytest.mark.parametrize("coid", ["A" * 33, "", "has-dash", "has space", "abc\n", "ünïcode", "a_b"])
def test_client_order_id_must_be_alphanumeric_and_at_most_32(coid):
    assert fields(client_order_id=coid) == {"client_order_id"}


@pytest.mark.parametrize("lev", ["1", "1.5", 10])
def test_leverage_at_least_one_accepted(lev):
    assert req(leverage=lev).leverage == to_decimal(lev)


@pytest.mark.parametrize("lev", ["0.99", "0", "-3"])
def test_leverage_below_one_refused(lev):
    errs = errors(leverage=lev)
    assert [e["loc"] for e in errs] == [("leverage",)]
    assert f"leverage must be >= 1, got {lev}" in errs[0]["msg"]


def test_unknown_field_refused():
    assert fields(foo=1) == {"foo"}


def test_unknown_side_and_type_refused():
    assert fields(side="long", type="iceberg") == {"side", "type"}


def test_several_problems_listed_at_once():
    with pytest.raises(ValidationError) as info:
        OrderRequest(symbol="btcusdt", side="buy", amount=-1, leverage="0", client_order_id="bad-id")
    exc = info.value
    assert exc.error_count() == 4
    locs = {e["loc"][0] for e in exc.errors()}
    assert locs == {"symbol", "amount", "leverage", "client_order_id"}
    text = str(exc)
    assert "amount must be > 0, got -1" in text
    assert "symbol must look like BASE/QUOTE" in text
    assert "leverage must be >= 1, got 0" in text


# -- Order -----------------------------------------------------------------------------------

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def test_order_from_request_copies_fields():
    r = req(
        symbol="eth/usdt", side="sell", type="stop_limit", amount="2.5", price="3000", stop_price="3010",
        time_in_force="IOC", reduce_only=True, leverage="3", client_order_id="abc1", tag="t1",
    )
    o = Order.from_request(r, id="ord-9", account="main", now=NOW)
    assert o.id == "ord-9"
    assert o.client_order_id == "abc1"
    assert o.account == "main"
    assert o.symbol == "ETH/USDT"
    assert o.side is Side.SELL
    assert o.type is OrderType.STOP_LIMIT
    assert o.amount == Decimal("2.5")
    assert o.price == Decimal("3000")
    assert o.stop_price == Decimal("3010")
    assert o.time_in_force is TimeInForce.IOC
    assert o.reduce_only is True
    assert o.leverage == Decimal(3)
    assert o.tag == "t1"
    assert o.created_at == NOW and o.updated_at == NOW
    # a fresh order: nothing learned yet
    assert o.status is OrderStatus.NEW
    assert o.filled == Decimal(0)
    assert o.remaining == Decimal("2.5")
    assert o.average_price is None
    assert o.venue_order_id is None
    assert o.revision == 0
    assert not o.is_final


def test_order_client_order_id_defaults_to_the_id():
    o = Order.from_request(req(), id="ord-1", account="paper", now=NOW)
    assert o.client_order_id == "ord-1"


def test_order_account_from_request_wins_over_default():
    o = Order.from_request(req(account="sub1"), id="ord-1", account="paper", now=NOW)
    assert o.account == "sub1"


def test_order_remaining_and_is_final_follow_fills_and_status():
    o = Order.from_request(req(amount="3"), id="ord-1", account="paper", now=NOW)
    o.filled = Decimal("1.25")
    assert o.remaining == Decimal("1.75")
    o.status = OrderStatus.FILLED
    assert o.is_final


def test_order_refuses_floats_too():
    with pytest.raises(ValidationError, match="floats are not accepted"):
        Order(id="x", client_order_id="x", symbol="BTC/USDT", side="buy", type="market", amount=0.5,
              created_at=NOW, updated_at=NOW)


# -- enums -----------------------------------------------------------------------------------


def test_side_sign_and_opposite():
    assert Side.BUY.sign == 1
    assert Side.SELL.sign == -1
    assert Side.BUY.opposite is Side.SELL
    assert Side.SELL.opposite is Side.BUY


def test_order_status_is_final():
    final = {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED, OrderStatus.FAILED}
    assert FINAL_STATUSES == final
    for s in OrderStatus:
        assert s.is_final is (s in final), s
        assert s.is_live is (s not in final), s


def test_order_type_price_and_trigger_needs():
    assert {t for t in OrderType if t.needs_price} == {OrderType.LIMIT, OrderType.STOP_LIMIT}
    assert {t for t in OrderType if t.needs_trigger} == {OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT}


# -- core.numbers ----------------------------------------------------------------------------


def test_to_decimal_float_has_no_binary_noise():
    assert to_decimal(0.1) == Decimal("0.1")
    assert to_decimal(0.1) != Decimal(0.1)
    assert to_decimal(1e-7) == Decimal("0.0000001")


def test_to_decimal_passes_ints_strings_and_decimals():
    d = Decimal("1.50")
    assert to_decimal(d) is d
    assert to_decimal(7) == Decimal(7)
    assert str(to_decimal("1.50")) == "1.50"


@pytest.mark.parametrize("bad", [True, False, None, "abc", "", object()])
def test_to_decimal_refuses_non_numbers(bad):
    with pytest.raises(ValueError, match="not a number"):
        to_decimal(bad)


@pytest.mark.parametrize(
    ("value", "step", "expected"),
    [
        ("1.2345", "0.01", "1.23"),
        ("1.235", "0.01", "1.24"),  # half to even: 123.5 -> 124
        ("1.245", "0.01", "1.24"),  # half to even: 124.5 -> 124
        ("1.2451", "0.01", "1.25"),
        ("101", "5", "100"),
        ("103", "5", "105"),
        ("0.37", "0.25", "0.25"),
        ("0.38", "0.25", "0.50"),
        ("1", "0.01", "1.00"),  # quantized to the step's places
    ],
)
def test_round_to_step(value, step, expected):
    result = round_to_step(Decimal(value), Decimal(step))
    assert result == Decimal(expected)
    assert str(result) == expected


def test_round_to_step_with_explicit_rounding():
    assert round_to_step(Decimal("1.201"), Decimal("0.1"), ROUND_UP) == Decimal("1.3")


@pytest.mark.parametrize("step", ["0", "-0.1"])
def test_round_to_step_non_positive_step_returns_value_unchanged(step):
    v = Decimal("1.23456")
    assert round_to_step(v, Decimal(step)) is v
    assert floor_to_step(v, Decimal(step)) is v


@pytest.mark.parametrize(
    ("value", "step", "expected"),
    [
        ("1.239", "0.01", "1.23"),
        ("0.0999", "0.001", "0.099"),
        ("2.99", "1", "2"),
        ("14", "5", "10"),
        ("0.75", "0.25", "0.75"),
        ("0.7499", "0.25", "0.50"),
    ],
)
def test_floor_to_step(value, step, expected):
    result = floor_to_step(Decimal(value), Decimal(step))
    assert result == Decimal(expected)
    assert str(result) == expected


@pytest.mark.parametrize(
    ("value", "step", "expected"),
    [
        ("0.30", "0.1", True),
        ("0.35", "0.1", False),
        ("100", "0.5", True),
        ("100.25", "0.5", False),
        ("0.75", "0.25", True),
        ("-0.2", "0.1", True),
        ("0", "0.01", True),
        ("1.23", "0", True),  # no step: anything goes
    ],
)
def test_is_multiple(value, step, expected):
    assert is_multiple(Decimal(value), Decimal(step)) is expected


# -- the order path's shortcuts: each must give what pydantic's own path gives -------------------


def _validated_order(request: OrderRequest, now: datetime) -> Order:
    return Order(
        id="td1", client_order_id=request.client_order_id or "td1", account=request.account or "paper",
        symbol=request.symbol, side=request.side, type=request.type, amount=request.amount, price=request.price,
        stop_price=request.stop_price, time_in_force=request.time_in_force, reduce_only=request.reduce_only,
        leverage=request.leverage, tag=request.tag, created_at=now, updated_at=now,
    )


@pytest.mark.parametrize("fields", [
    {"symbol": "BTC/USDT", "side": "buy", "type": "limit", "amount": "0.001", "price": "50000.1"},
    {"symbol": "eth/usdt", "side": "sell", "type": "stop_limit", "amount": "2", "price": "3000", "stop_price": "3010",
     "tag": "x", "client_order_id": "abc", "account": "sub", "leverage": 3, "time_in_force": "GTC", "reduce_only": True},
    {"symbol": "SOL/USDT", "side": "buy", "type": "market", "amount": 1},
])
def test_an_order_from_a_request_is_the_validated_order(fields: dict[str, object]) -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
    request = OrderRequest(**fields)  # type: ignore[arg-type]
    fast, slow = Order.from_request(request, id="td1", account="paper", now=now), _validated_order(request, now)
    assert fast == slow
    assert fast.model_dump_json() == slow.model_dump_json()
    assert fast.model_fields_set == slow.model_fields_set
    assert list(fast.__dict__) == list(slow.__dict__) and repr(fast) == repr(slow)
    fast.tag = "changed"  # each order has its own dict and field set
    assert Order.from_request(request, id="td1", account="paper", now=now).tag == request.tag


def test_a_request_built_without_validation_is_validated_into_its_order() -> None:
    request = OrderRequest.model_construct(symbol="BTC/USDT", side=Side.BUY, type=OrderType.LIMIT, amount=0.5,
                                           price=Decimal(50000), stop_price=None, time_in_force=TimeInForce.GTC,
                                           reduce_only=False, leverage=Decimal(1), client_order_id=None, tag=None,
                                           account=None)
    with pytest.raises(ValidationError, match="floats are not accepted"):
        Order.from_request(request, id="td1", account="paper", now=datetime.now(timezone.utc))


def test_an_order_copy_is_pydantics_copy_and_shares_nothing_mutable() -> None:
    now = datetime(2026, 1, 2, tzinfo=timezone.utc)
    order = _validated_order(OrderRequest(symbol="BTC/USDT", side="buy", type="limit", amount="1", price="2"), now)
    copied = order.model_copy()
    assert copied == order and copied.model_fields_set == order.model_fields_set
    assert copied.__dict__ is not order.__dict__ and copied.model_fields_set is not order.model_fields_set
    copied.status = OrderStatus.OPEN
    assert order.status is OrderStatus.NEW and "status" not in order.model_fields_set
    assert order.model_copy(update={"tag": "t"}).tag == "t" and order.tag is None


def test_enum_values_read_as_enums_own() -> None:
    for enum in (Side, OrderType, TimeInForce, OrderStatus):
        for member in enum:
            assert member.value == member._value_ == str(member)
            assert enum(member.value) is member
