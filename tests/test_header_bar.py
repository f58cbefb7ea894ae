"""The header line: whatever the terminal's width and the halt reason, the trading state and
PAPER/LIVE always show; the account label gives way first, then the clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from textual.app import App, ComposeResult

from core.models import TradingState
from widgets.header_bar import HeaderBar

NOW = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
CLOCK = "2026-01-05 09:30:00 UTC"


class _Host(App[None]):
    def __init__(self, live: bool = False) -> None:
        super().__init__()
        self._live = live

    def compose(self) -> ComposeResult:
        yield HeaderBar(accounts="paper, okx-main, binance-sub", venue="sim", live=self._live)


async def _line(width: int, state: TradingState, reason: str, live: bool = False) -> str:
    app = _Host(live)
    async with app.run_test(size=(width, 4)) as pilot:
        header = app.query_one(HeaderBar)
        header.now, header.state, header.reason = NOW, state, reason
        await pilot.pause()
        line = header.render()
        assert line.cell_length == width  # one full line, never wrapped or overflowing
        return line.plain


async def test_wide_terminal_shows_everything() -> None:
    line = await _line(160, TradingState.HALTED, "HALT key")
    assert line.startswith(" tradedesk  paper, okx-main, binance-sub @ sim  PAPER  HALTED: HALT key ")
    assert line.endswith(f" {CLOCK} ")


async def test_a_multi_line_reason_shows_its_first_line_and_keeps_the_clock() -> None:
    line = await _line(120, TradingState.REDUCING, 'reconciliation of paper failed: okx 503\n{"code": "50001"}')
    assert "REDUCING: reconciliation of paper failed: okx 503" in line and "50001" not in line
    assert line.endswith(f" {CLOCK} ")


@pytest.mark.parametrize("live", [False, True])
async def test_narrow_terminal_keeps_state_and_mode_and_drops_the_account_first(live: bool) -> None:
    line = await _line(60, TradingState.HALTED, "daily loss limit", live=live)
    assert "HALTED: daily loss limit" in line and (" LIVE " if live else " PAPER ") in line
    assert "binance-sub" not in line  # the account label gave way


async def test_wide_characters_are_measured_in_cells() -> None:
    line = await _line(100, TradingState.REDUCING, "交易所拒绝了请求")
    assert "REDUCING: 交易所拒绝了请求" in line
    assert line.endswith(f" {CLOCK} ")
