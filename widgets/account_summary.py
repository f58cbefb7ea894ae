"""Account figures and a sparkline of equity over the session."""

from __future__ import annotations

from collections import deque
from decimal import Decimal

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static

from core.models import AccountStatus


def money(value: Decimal) -> str:
    return f"{value:,.2f}"


class AccountSummary(Vertical):
    DEFAULT_CSS = """
    AccountSummary { height: auto; }
    AccountSummary #acct-figures { height: auto; }
    AccountSummary Sparkline { height: 1; margin: 0 1; }
    """

    def __init__(self, id: str | None = "account-summary") -> None:
        super().__init__(id=id)
        self._equity: deque[float] = deque(maxlen=240)

    def compose(self) -> ComposeResult:
        yield Static("", id="acct-figures")
        yield Sparkline([], id="acct-equity")

    def show(self, status: AccountStatus) -> None:
        pnl_style = "green" if status.daily_pnl > 0 else "red" if status.daily_pnl < 0 else ""
        text = Text()
        text.append(f"Equity  {money(status.equity):>13} {status.currency}\n")
        text.append(f"Balance {money(status.balance):>13}\n")
        text.append(f"Free    {money(status.free_margin):>13} Exp {money(status.exposure)}\n")
        text.append("Day PnL ")
        text.append(f"{money(status.daily_pnl):>13}", style=pnl_style)
        text.append(f" DD {status.drawdown_pct:.2f}%")
        self.query_one("#acct-figures", Static).update(text)
        self._equity.append(float(status.equity))
        if len(self._equity) > 1:
            self.query_one("#acct-equity", Sparkline).data = list(self._equity)
