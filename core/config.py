"""Configuration: a TOML file plus ``TRADEDESK_*`` environment variables (pydantic-settings).

Environment variables win over the file (``TRADEDESK_RISK__MAX_LEVERAGE=5``). Risk limits are
global defaults with optional per-account overrides under ``[accounts.NAME.risk]``. Every
default is a sensible one, so no file is needed to start.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.models import TradingState

BreakerAction = Literal["HALTED", "REDUCING"]


class ConfigError(Exception):
    """A configuration problem, with a one-line message naming the setting and the rule."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class RiskLimits(_Section):
    max_order_notional: Decimal = Field(Decimal(250_000), gt=0)
    max_position_notional: Decimal = Field(Decimal(500_000), gt=0)  # per symbol
    max_exposure_pct: Decimal = Field(Decimal(500), gt=0)  # total exposure / equity, in %
    max_leverage: Decimal = Field(Decimal(10), ge=1)
    price_band_pct: Decimal = Field(Decimal(5), gt=0)  # limit price vs last price (fat finger)
    max_orders_per_second: float = Field(50.0, gt=0)
    round_to_market: bool = False  # round to tick/lot instead of refusing (never silently: noted)


class RiskOverrides(_Section):
    """Per-account overrides: any field left out takes the global value."""

    max_order_notional: Decimal | None = Field(None, gt=0)
    max_position_notional: Decimal | None = Field(None, gt=0)
    max_exposure_pct: Decimal | None = Field(None, gt=0)
    max_leverage: Decimal | None = Field(None, ge=1)
    price_band_pct: Decimal | None = Field(None, gt=0)
    max_orders_per_second: float | None = Field(None, gt=0)
    round_to_market: bool | None = None


class BreakerSettings(_Section):
    max_daily_loss: Decimal | None = Field(Decimal(10_000), gt=0)  # absolute, in the account currency
    max_daily_loss_pct: Decimal | None = Field(Decimal(5), gt=0)  # of start-of-day equity
    max_drawdown_pct: Decimal | None = Field(Decimal(10), gt=0)  # from the equity peak
    max_consecutive_losses: int | None = Field(5, gt=0)
    max_rejects_per_minute: int | None = Field(20, gt=0)
    daily_loss_action: BreakerAction = "HALTED"
    drawdown_action: BreakerAction = "HALTED"
    consecutive_losses_action: BreakerAction = "REDUCING"
    rejects_action: BreakerAction = "HALTED"


class HaltSettings(_Section):
    deadline_seconds: float = Field(10.0, gt=0)
    retry_initial_seconds: float = Field(0.05, gt=0)
    retry_max_seconds: float = Field(1.0, gt=0)


class TrackingSettings(_Section):
    """How exchange orders and prices are kept in step (ccxt venues). An order is looked at
    often while it is fresh, then less and less while it rests; a websocket stream, where the
    exchange has one, replaces the polling and a slow safety-net read checks it."""

    fast_poll_seconds: float = Field(0.5, gt=0)  # an order just acked or just changed
    fresh_seconds: float = Field(10.0, ge=0)  # how long an order counts as fresh after a change
    slow_poll_seconds: float = Field(5.0, gt=0)  # where the interval of a resting order settles
    streamed_poll_seconds: float = Field(30.0, gt=0)  # safety-net read while a stream covers the order
    price_poll_seconds: float = Field(1.0, gt=0)  # ticker reads for marks when no ticker stream runs
    websockets: bool = True  # use ccxt.pro streams where the exchange has them
    stream_retry_initial_seconds: float = Field(1.0, gt=0)
    stream_retry_max_seconds: float = Field(60.0, gt=0)
    markets_refresh_minutes: float = Field(60.0, ge=0)  # reload precision/limits/fees; 0 = never
    # A released emulated trigger whose send got no answer and that lookups never find is given
    # up as never sent after this many misses spread over at least this long (CcxtTracker._never_sent)
    unsent_lookups: int = Field(3, ge=1)
    unsent_seconds: float = Field(30.0, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> TrackingSettings:
        if self.slow_poll_seconds < self.fast_poll_seconds:
            raise ValueError(f"slow_poll_seconds ({self.slow_poll_seconds:g}) must not be below "
                             f"fast_poll_seconds ({self.fast_poll_seconds:g})")
        if self.stream_retry_max_seconds < self.stream_retry_initial_seconds:
            raise ValueError(f"stream_retry_max_seconds ({self.stream_retry_max_seconds:g}) must not be below "
                             f"stream_retry_initial_seconds ({self.stream_retry_initial_seconds:g})")
        return self


class SignalFilters(_Section):
    min_strength: float = Field(0.5, ge=0, le=1)
    cooldown_seconds: float = Field(60.0, ge=0)
    max_spread_pct: Decimal = Field(Decimal("0.2"), gt=0)
    min_volatility_pct: Decimal = Field(Decimal(0), ge=0)  # std-dev of recent returns, in %
    max_volatility_pct: Decimal = Field(Decimal(5), gt=0)
    volatility_window: int = Field(30, ge=3)
    trend_window: int = Field(120, ge=3)  # prices in the longer timeframe
    require_trend_alignment: bool = True
    max_age_seconds: float = Field(30.0, gt=0)


class AlgoSettings(_Section):
    # What a running execution algorithm does when the engine restarts: carry on from its
    # journaled progress, or stop (its open children cancelled) and say so.
    on_restart: Literal["resume", "stop"] = "stop"


class AccountSettings(_Section):
    """One trading account. Keys are never written here: only the names of the environment
    variables that hold them."""

    exchange: str = "sim"  # "sim" or a ccxt exchange id
    mode: Literal["paper", "live"] = "paper"  # paper on an exchange = its live prices, simulated fills
    api_key_env: str | None = None
    secret_env: str | None = None
    password_env: str | None = None
    sandbox: bool = False
    api_url: str | None = None
    seed: int = 7
    risk: RiskOverrides = Field(default_factory=RiskOverrides)


class Settings(BaseModel):
    """All settings. ``Settings()`` is the defaults; ``Settings.load`` reads file and environment."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    # Factories, not instances: building a default instance here would build every section's
    # validator at import time, defeating defer_build (a start-up cost for every client).
    risk: RiskLimits = Field(default_factory=RiskLimits)
    breakers: BreakerSettings = Field(default_factory=BreakerSettings)
    halt: HaltSettings = Field(default_factory=HaltSettings)
    signals: SignalFilters = Field(default_factory=SignalFilters)
    algos: AlgoSettings = Field(default_factory=AlgoSettings)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    accounts: dict[str, AccountSettings] = {}
    keys: dict[str, str] = {}  # console binding id -> key, e.g. halt = "ctrl+x"
    initial_state: TradingState = TradingState.ACTIVE

    @classmethod
    def defaults(cls) -> Settings:
        """``Settings()`` without validating: the defaults are valid by definition (a test holds
        them equal), and building every section's validator cost ~17 ms of the console's start."""
        sections = {name: f.default_factory.model_construct()  # type: ignore[union-attr]
                    for name, f in cls.model_fields.items()
                    if isinstance(f.default_factory, type) and issubclass(f.default_factory, _Section)}
        return cls.model_construct(**sections)

    def limits_for(self, account: str) -> RiskLimits:
        acct = self.accounts.get(account)
        if acct is None:
            return self.risk
        changes = {k: v for k, v in acct.risk.model_dump().items() if v is not None}
        return self.risk.model_copy(update=changes)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
        """Read the TOML file at ``path`` (optional) and the environment; raise ConfigError."""
        # pydantic-settings is imported here, not at module import: it is a start-up cost
        # every client would pay, and only loading reads files and the environment.
        from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

        toml_path = Path(path).expanduser() if path else None
        if toml_path is not None and not toml_path.is_file():
            raise ConfigError(f"config file {toml_path} does not exist")

        class _FromFile(BaseSettings, cls):  # type: ignore[valid-type, misc]
            model_config = SettingsConfigDict(env_prefix="TRADEDESK_", env_nested_delimiter="__", extra="forbid")

            @classmethod
            def settings_customise_sources(
                cls,
                settings_cls: type[BaseSettings],  # noqa: F821
                init_settings: PydanticBaseSettingsSource,
                env_settings: PydanticBaseSettingsSource,
                dotenv_settings: PydanticBaseSettingsSource,
                file_secret_settings: PydanticBaseSettingsSource,
            ) -> tuple[PydanticBaseSettingsSource, ...]:
                sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
                if toml_path is not None:
                    sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
                return tuple(sources)

        try:
            loaded = _FromFile(**overrides)
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc, toml_path)) from None
        except ValueError as exc:  # TOML syntax errors surface as ValueError subclasses
            raise ConfigError(f"config file {toml_path}: {exc}") from None
        return cls.model_validate(loaded.model_dump())


def describe_validation_error(exc: ValidationError, path: Path | None = None) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "config"
        got = err.get("input")
        shown = f" (got {got!r})" if got is not None and not isinstance(got, dict) else ""
        parts.append(f"{where}: {err['msg']}{shown}")
    prefix = f"config file {path}: " if path else "config: "
    return prefix + "; ".join(parts)
