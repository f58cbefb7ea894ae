"""Configuration (core.config): TOML file, TRADEDESK_* environment overrides, per-account risk
overrides, clear one-line errors, and an engine that enforces the settings it was given."""

from __future__ import annotations

import os
from decimal import Decimal as D
from pathlib import Path

import pytest
from pydantic import ValidationError

from core import Engine, ManualClock, OrderRequest, OrderStatus, TradingState
from core.config import ConfigError, RiskLimits, Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("TRADEDESK_"):
            monkeypatch.delenv(name)


def toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tradedesk.toml"
    path.write_text(text)
    return path


def load_error(path: Path | str | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        Settings.load(path)
    message = str(info.value)
    assert "\n" not in message
    return message


# -- defaults ----------------------------------------------------------------------------------


def test_defaults_without_a_file() -> None:
    s = Settings.load()
    assert s.risk == RiskLimits()
    assert s.risk.max_order_notional == D(250_000) and s.risk.max_leverage == D(10)
    assert s.risk.price_band_pct == D(5) and s.risk.max_orders_per_second == 50 and s.risk.round_to_market is False
    assert s.signals.min_strength == 0.5 and s.signals.max_age_seconds == 30
    assert s.breakers.max_daily_loss == D(10_000)
    assert s.initial_state is TradingState.ACTIVE
    assert s.accounts == {} and s.limits_for("paper") == s.risk


def test_unvalidated_defaults_equal_the_validated_ones() -> None:
    """The console starts from Settings.defaults(), built without validation: it must be
    exactly what validation gives, section by section, and stay frozen."""
    fast, checked = Settings.defaults(), Settings()
    assert fast == checked and fast.model_dump() == checked.model_dump()
    for name in ("risk", "breakers", "halt", "signals", "algos", "tracking"):
        assert getattr(fast, name) == getattr(checked, name), name
        assert type(getattr(fast, name)) is type(getattr(checked, name)), name
    with pytest.raises(ValidationError):
        fast.risk.max_leverage = D(1)  # type: ignore[misc]


def test_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    assert Settings.load(toml(tmp_path, "")) == Settings.load()


# -- reading the file --------------------------------------------------------------------------


def test_file_values_are_read(tmp_path: Path) -> None:
    path = toml(tmp_path, """
initial_state = "REDUCING"

[risk]
max_order_notional = 1000
max_leverage = 3
price_band_pct = 2.5
round_to_market = true

[signals]
min_strength = 0.7
trend_window = 50

[keys]
halt = "ctrl+x"
""")
    s = Settings.load(path)
    assert s.risk.max_order_notional == D(1000)
    assert s.risk.max_leverage == D(3)
    assert s.risk.price_band_pct == D("2.5")  # no float noise
    assert s.risk.round_to_market is True
    assert s.risk.max_position_notional == D(500_000)  # untouched defaults stay
    assert (s.signals.min_strength, s.signals.trend_window) == (0.7, 50)
    assert s.keys == {"halt": "ctrl+x"}
    assert s.initial_state is TradingState.REDUCING


def test_load_accepts_a_string_path(tmp_path: Path) -> None:
    assert Settings.load(str(toml(tmp_path, "[risk]\nmax_leverage = 4\n"))).risk.max_leverage == D(4)


def test_settings_are_frozen(tmp_path: Path) -> None:
    s = Settings.load(toml(tmp_path, "[risk]\nmax_leverage = 4\n"))
    with pytest.raises(ValidationError, match="frozen"):
        s.risk.max_leverage = D(100)  # type: ignore[misc]


# -- environment -------------------------------------------------------------------------------


def test_env_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = toml(tmp_path, "[risk]\nmax_leverage = 2\nmax_order_notional = 1000\n")
    monkeypatch.setenv("TRADEDESK_RISK__MAX_LEVERAGE", "5")
    s = Settings.load(path)
    assert s.risk.max_leverage == D(5)
    assert s.risk.max_order_notional == D(1000)  # the rest of the section still comes from the file


def test_env_works_without_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEDESK_RISK__MAX_LEVERAGE", "7")
    monkeypatch.setenv("TRADEDESK_SIGNALS__MIN_STRENGTH", "0.9")
    s = Settings.load()
    assert s.risk.max_leverage == D(7) and s.signals.min_strength == 0.9


def test_bad_env_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEDESK_RISK__MAX_LEVERAGE", "0.5")
    message = load_error()
    assert "risk.max_leverage" in message and "greater than or equal to 1" in message


# -- per-account overrides ---------------------------------------------------------------------


def test_account_overrides_merge_with_the_global_limits(tmp_path: Path) -> None:
    path = toml(tmp_path, """
[risk]
max_order_notional = 5000
max_leverage = 4

[accounts.binance.risk]
max_order_notional = 1000
round_to_market = true

[accounts.other]
""")
    s = Settings.load(path)
    binance = s.limits_for("binance")
    assert binance.max_order_notional == D(1000)  # overridden
    assert binance.round_to_market is True
    assert binance.max_leverage == D(4)  # from the global [risk]
    assert binance.max_position_notional == D(500_000)  # the global default
    assert s.limits_for("other") == s.risk  # an account with no overrides
    assert s.limits_for("unknown") == s.risk
    assert s.risk.max_order_notional == D(5000)  # the global limits are not changed by an override


def test_env_overrides_a_per_account_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = toml(tmp_path, "[accounts.paper.risk]\nmax_position_notional = 7000\n")
    monkeypatch.setenv("TRADEDESK_ACCOUNTS__PAPER__RISK__MAX_LEVERAGE", "3")
    limits = Settings.load(path).limits_for("paper")
    assert (limits.max_position_notional, limits.max_leverage) == (D(7000), D(3))


def test_bad_account_override_names_the_setting(tmp_path: Path) -> None:
    message = load_error(toml(tmp_path, "[accounts.binance.risk]\nmax_leverage = 0\n"))
    assert "accounts.binance.risk.max_leverage" in message


# -- errors ------------------------------------------------------------------------------------


def test_bad_value_names_the_setting_and_the_rule(tmp_path: Path) -> None:
    path = toml(tmp_path, "[risk]\nmax_leverage = 0\n")
    message = load_error(path)
    assert message == f"config file {path}: risk.max_leverage: Input should be greater than or equal to 1 (got 0)"


def test_wrong_type_names_the_setting(tmp_path: Path) -> None:
    message = load_error(toml(tmp_path, '[risk]\nmax_order_notional = "lots"\n'))
    assert "risk.max_order_notional" in message and "'lots'" in message


@pytest.mark.parametrize(
    ("text", "setting"),
    [
        ("[risk]\nmax_order_notional = 0\n", "risk.max_order_notional"),
        ("[risk]\nmax_orders_per_second = -1\n", "risk.max_orders_per_second"),
        ("[signals]\nmin_strength = 1.5\n", "signals.min_strength"),
        ("[signals]\nvolatility_window = 2\n", "signals.volatility_window"),
        ("[breakers]\ndaily_loss_action = \"PANIC\"\n", "breakers.daily_loss_action"),
        ("[halt]\ndeadline_seconds = 0\n", "halt.deadline_seconds"),
        ('initial_state = "PAUSED"\n', "initial_state"),
    ],
)
def test_each_section_names_its_bad_setting(tmp_path: Path, text: str, setting: str) -> None:
    assert f": {setting}: " in load_error(toml(tmp_path, text))


def test_every_bad_setting_is_named_in_one_line(tmp_path: Path) -> None:
    message = load_error(toml(tmp_path, "[risk]\nmax_leverage = 0\n[signals]\nmin_strength = 2\n"))
    assert "risk.max_leverage" in message and "signals.min_strength" in message


def test_unknown_keys_are_named(tmp_path: Path) -> None:
    message = load_error(toml(tmp_path, "[risk]\nmax_levrage = 5\n"))
    assert "risk.max_levrage: Extra inputs are not permitted" in message
    assert "foo: Extra inputs are not permitted" in load_error(toml(tmp_path, "foo = 1\n"))
    assert "accounts.binance.risk.bogus" in load_error(toml(tmp_path, "[accounts.binance.risk]\nbogus = 1\n"))


def test_toml_syntax_error_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = toml(tmp_path, "[risk]\nmax_leverage = 5\n[signals\n")
    message = load_error(path)
    assert message.startswith(f"config file {path}: ")
    assert "line 3" in message


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    assert load_error(missing) == f"config file {missing} does not exist"


# -- the engine enforces its settings ----------------------------------------------------------


async def test_engine_enforces_max_order_notional_from_the_file(tmp_path: Path, clock: ManualClock) -> None:
    settings = Settings.load(toml(tmp_path, "[risk]\nmax_order_notional = 1000\n"))
    async with Engine.paper(db=tmp_path / "j.sqlite", seed=7, clock=clock, settings=settings) as engine:
        small = await engine.place_market_order("BTC/USDT", "buy", D("0.0196"))  # 999.6 USDT
        assert small.status is OrderStatus.FILLED
        big = await engine.place_market_order("BTC/USDT", "buy", D("0.0197"))  # 1004.7 USDT
        assert big.status is OrderStatus.REJECTED
        assert "above max_order_notional 1000" in (big.error or "")


async def test_engine_enforces_per_account_overrides(tmp_path: Path, clock: ManualClock) -> None:
    settings = Settings.load(toml(tmp_path, "[risk]\nmax_leverage = 5\n[accounts.paper.risk]\nmax_leverage = 2\n"))
    async with Engine.paper(db=tmp_path / "j.sqlite", seed=7, clock=clock, settings=settings) as engine:
        ok = OrderRequest(symbol="BTC/USDT", side="buy", type="market", amount=D("0.01"), leverage=D(2))
        too_high = OrderRequest(symbol="BTC/USDT", side="buy", type="market", amount=D("0.01"), leverage=D(3))
        assert engine.check_order(ok) == []
        assert engine.check_order(too_high) == ["leverage 3 is above max_leverage 2"]


async def test_engine_enforces_env_overrides(tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEDESK_RISK__PRICE_BAND_PCT", "1")
    settings = Settings.load()
    async with Engine.paper(db=tmp_path / "j.sqlite", seed=7, clock=clock, settings=settings) as engine:
        inside = OrderRequest(symbol="BTC/USDT", side="buy", type="limit", amount=D("0.01"), price=D(50490))
        outside = OrderRequest(symbol="BTC/USDT", side="buy", type="limit", amount=D("0.01"), price=D("50489.9"))
        assert engine.check_order(inside) == []
        assert engine.check_order(outside) == [
            "limit price 50489.9 is more than 1% from the last price 51000 (fat-finger band)"
        ]


async def test_engine_starts_in_the_configured_state(tmp_path: Path, clock: ManualClock) -> None:
    settings = Settings.load(toml(tmp_path, 'initial_state = "HALTED"\n'))
    async with Engine.paper(db=tmp_path / "j.sqlite", seed=7, clock=clock, settings=settings) as engine:
        assert engine.trading_state is TradingState.HALTED
        order = await engine.place_market_order("BTC/USDT", "buy", D("0.01"))
        assert order.status is OrderStatus.REJECTED and "trading is HALTED" in (order.error or "")
