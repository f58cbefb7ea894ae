"""Account figures and a sparkline of equity over the session.

With one account: its equity, balance, free margin, exposure, day PnL and drawdown. With
several: the selected account (the order entry's, else the default one) next to the total of
all accounts in its currency (equity, day PnL, exposure, open positions).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import Decimal

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static

from core.models import ZERO, AccountStatus


def money(value: Decimal) -> str:
    return f"{value:,.2f}"


@dataclass(frozen=True, slots=True)
class Totals:
    """The sum over the accounts that keep their books in ``currency``."""

    currency: str
    accounts: int
    equity: Decimal
    daily_pnl: Decimal
    exposure: Decimal
    open_positions: int
    other_currencies: int  # accounts left out: their money is not in ``currency``


def totals(statuses: list[AccountStatus], currency: str) -> Totals:
    same = [s for s in statuses if s.currency == currency]
    return Totals(
        currency=currency,
        accounts=len(same),
        equity=sum((s.equity for s in same), ZERO),
        daily_pnl=sum((s.daily_pnl for s in same), ZERO),
        exposure=sum((s.exposure for s in same), ZERO),
        open_positions=sum(s.open_positions for s in same),
        other_currencies=len(statuses) - len(same),
    )


def _pnl_style(value: Decimal) -> str:
    return "green" if value > 0 else "red" if value < 0 else ""


class AccountSummary(Vertical):
    DEFAULT_CSS = """
    AccountSummary { height: auto; }
    AccountSummary #acct-figures { height: auto; }
    AccountSummary Sparkline { height: 1; margin: 0 1; }
    """

    def __init__(self, id: str | None = "account-summary") -> None:
        super().__init__(id=id)
        self._equity: deque[float] = deque(maxlen=240)
        self._statuses: dict[str, AccountStatus] = {}
        self._selected: str | None = None  # None: the first account shown

    def compose(self) -> ComposeResult:
        yield Static("", id="acct-figures")
        yield Sparkline([], id="acct-equity")

    @property
    def selected(self) -> str | None:
        return self._selected

    def show(self, status: AccountStatus) -> None:
        """The newest figures of one account (any account: the totals include them all)."""
        self._statuses[status.account] = status
        if self._selected is None:
            self._selected = status.account
        if status.account == self._selected:
            self._equity.append(float(status.equity))
            if len(self._equity) > 1:
                self.query_one("#acct-equity", Sparkline).data = list(self._equity)
        self._render_figures()

    def select(self, account: str) -> None:
        """Show this account's figures beside the totals (its equity history starts over)."""
        if account == self._selected or account not in self._statuses:
            return
        self._selected = account
        self._equity.clear()
        self._equity.append(float(self._statuses[account].equity))
        self.query_one("#acct-equity", Sparkline).data = []
        self._render_figures()

    def _render_figures(self) -> None:
        status = self._statuses.get(self._selected or "")
        if status is None:
            return
        text = self._one(status) if len(self._statuses) < 2 else self._with_totals(status)
        self.query_one("#acct-figures", Static).update(text)

    @staticmethod
    def _one(status: AccountStatus) -> Text:
        text = Text()
        text.append(f"Equity  {money(status.equity):>13} {status.currency}\n")
        text.append(f"Balance {money(status.balance):>13}\n")
        text.append(f"Free    {money(status.free_margin):>13} Exp {money(status.exposure)}\n")
        text.append("Day PnL ")
        text.append(f"{money(status.daily_pnl):>13}", style=_pnl_style(status.daily_pnl))
        text.append(f" DD {status.drawdown_pct:.2f}%")
        return text

    def _with_totals(self, status: AccountStatus) -> Text:
        """Two columns, 8 + 12 + 12 characters: the selected account and the total."""
        total = totals(list(self._statuses.values()), status.currency)
        text = Text()
        text.append(f"{status.currency:<8}{status.account[:11]:>12}{f'All {total.accounts}':>12}\n", style="bold")
        text.append(f"Equity  {money(status.equity):>12}{money(total.equity):>12}\n")
        text.append("Day PnL ")
        text.append(f"{money(status.daily_pnl):>12}", style=_pnl_style(status.daily_pnl))
        text.append(f"{money(total.daily_pnl):>12}\n", style=_pnl_style(total.daily_pnl))
        text.append(f"Exp     {money(status.exposure):>12}{money(total.exposure):>12}\n")
        text.append(f"Pos     {status.open_positions:>12}{total.open_positions:>12}\n")
        text.append(f"Free    {money(status.free_margin):>12}  DD {status.drawdown_pct:.2f}%")
        if total.other_currencies:
            text.append(f"\n+{total.other_currencies} account(s) in other currencies, not in All", style="dim")
        return text
