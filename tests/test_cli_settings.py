"""The command's settings: the defaults without a config file or TRADEDESK_* variables (read
without pydantic-settings, a start-up cost), the file and the environment otherwise."""

from __future__ import annotations

import os
from decimal import Decimal as D
from pathlib import Path

import pytest

from console.cli import load_settings
from core.config import ConfigError, Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("TRADEDESK_"):
            monkeypatch.delenv(name)


def test_nothing_to_read_gives_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_loading(*args: object, **kwargs: object) -> Settings:
        raise AssertionError("nothing to read: Settings.load (pydantic-settings) is not needed")

    monkeypatch.setattr(Settings, "load", no_loading)
    assert load_settings(None) == Settings()


@pytest.mark.parametrize("name", ["TRADEDESK_RISK__MAX_LEVERAGE", "tradedesk_risk__max_leverage"])
def test_an_environment_override_is_still_read(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(name, "7")
    assert load_settings(None).risk.max_leverage == D(7)


def test_a_config_file_is_still_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "desk.toml"
    path.write_text("[risk]\nmax_leverage = 3\n")
    assert load_settings(path).risk.max_leverage == D(3)
    path.write_text("[risk]\nmax_leverage = -3\n")
    with pytest.raises(ConfigError, match="risk.max_leverage"):
        load_settings(path)
