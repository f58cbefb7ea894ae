"""Execution algorithms: TWAP, iceberg and limit-then-market as journaled parent orders whose
children go through the engine like any order (same risk checks, tagged ``algo:<parent id>``).

``engine.algos`` is the ``AlgoManager``: start, pause, resume, cancel, list. Every change is
journaled and published on the engine's event stream as ``AlgoUpdated``. Each running (or
paused) algorithm is registered with the engine, so the halt stops it before it cancels orders.

A child refused by the risk check or rejected by the venue fails its parent, with the reasons:
the limits that refused it (size, exposure, price band, trading state) do not change by
themselves within a slice, so retrying would only repeat the refusal (venue rejects also feed
the rejects breaker, which halts) while the trader thinks the order is working.

At start-up the journaled parents come back; running ones resume from their progress (children
already filled count) or are stopped, as ``algos.on_restart`` says. The console subscribes after
start-up, so what the restart did is also kept in ``restart_notes``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from core.algos_iceberg import Iceberg
from core.algos_limit_then_market import LimitThenMarket
from core.algos_model import (
    TAG_PREFIX,
    AlgoKind,
    AlgoStatus,
    AlgoUpdated,
    IcebergParams,
    LimitThenMarketParams,
    ParentOrder,
    TwapParams,
)
from core.algos_runner import AlgoRunner
from core.algos_twap import Twap
from core.errors import EngineError
from core.events import OrderUpdated
from core.models import Order, TradingState
from core.numbers import clean, floor_to_step, is_multiple
from core.streams import EventStream

if TYPE_CHECKING:
    from core.engine import Engine

__all__ = ["AlgoKind", "AlgoManager", "AlgoStatus", "AlgoUpdated", "ParentOrder"]

_RUNNERS: dict[AlgoKind, type[AlgoRunner]] = {
    AlgoKind.TWAP: Twap,
    AlgoKind.ICEBERG: Iceberg,
    AlgoKind.LIMIT_THEN_MARKET: LimitThenMarket,
}


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"] if p not in ("twap", "iceberg", "limit_then_market"))
        got = err.get("input")
        shown = f" (got {got!r})" if got is not None and not isinstance(got, dict) else ""
        parts.append(f"{where}: {err['msg']}{shown}")
    return "; ".join(parts)


class AlgoManager:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.restart_notes: list[str] = []
        self._runners: dict[str, AlgoRunner] = {}
        self._seq = 0
        self._stream: EventStream | None = None
        self._router: asyncio.Task[None] | None = None

    # -- starting -----------------------------------------------------------------------------

    async def start_twap(
        self, symbol: str, side: str, amount: Decimal | int | str, *, duration: float, slices: int,
        child_type: str = "market", price_limit: Decimal | int | str | None = None, account: str | None = None,
    ) -> ParentOrder:
        """Split ``amount`` into ``slices`` children over ``duration`` seconds."""
        params = {"kind": "twap", "duration": duration, "slices": slices, "child_type": child_type,
                  "price_limit": price_limit}
        return await self._start(AlgoKind.TWAP, symbol, side, amount, params, account)

    async def start_iceberg(
        self, symbol: str, side: str, amount: Decimal | int | str, *, visible: Decimal | int | str,
        price: Decimal | int | str, refresh: float | None = None, account: str | None = None,
    ) -> ParentOrder:
        """Show ``visible`` at ``price`` at a time until ``amount`` is filled."""
        params = {"kind": "iceberg", "visible": visible, "price": price, "refresh": refresh}
        return await self._start(AlgoKind.ICEBERG, symbol, side, amount, params, account)

    async def start_limit_then_market(
        self, symbol: str, side: str, amount: Decimal | int | str, *, price: Decimal | int | str, timeout: float,
        account: str | None = None,
    ) -> ParentOrder:
        """Rest a limit at ``price`` for ``timeout`` seconds, then take the rest at market."""
        params = {"kind": "limit_then_market", "price": price, "timeout": timeout}
        return await self._start(AlgoKind.LIMIT_THEN_MARKET, symbol, side, amount, params, account)

    async def _start(self, kind: AlgoKind, symbol: str, side: str, amount: Any, params: dict[str, Any],
                     account: str | None) -> ParentOrder:
        engine = self.engine
        if engine.journal is None:
            raise EngineError("the engine is not running: use 'async with Engine.paper(...) as engine' or await engine.start()")
        if engine.trading_state is TradingState.HALTED:
            raise EngineError(f"trading is HALTED: no {kind.value} can start until an explicit resume")
        account = account or engine.account
        if account not in engine.accounts:
            raise EngineError(f"unknown account {account!r} (accounts: {', '.join(engine.accounts)})")
        now = engine.clock.now()
        try:
            parent = ParentOrder(id="new", kind=kind, account=account, symbol=str(symbol).strip().upper(), side=side,
                                 amount=amount, params=params, created_at=now, updated_at=now)
        except ValidationError as exc:
            raise EngineError(f"{kind.value}: {_describe(exc)}") from None
        problems = self._problems(parent)
        if problems:
            raise EngineError(f"{kind.value}: " + "; ".join(problems))
        self._seq += 1
        parent.id = f"A{self._seq:05d}"
        if kind is AlgoKind.TWAP:
            parent.next_at = now  # the first slice goes at once
        runner = self._add(parent)
        await runner.journal("algo_started")
        runner.launch()
        return parent.model_copy(deep=True)

    def _problems(self, parent: ParentOrder) -> list[str]:
        """Everything wrong with a new parent against its market, in one message."""
        market = self.engine.markets(parent.account).get(parent.symbol)
        if market is None:
            return [f"unknown symbol {parent.symbol} on account {parent.account}"]
        lot, tick, minimum = market.lot_size, market.tick_size, market.min_amount
        amount = parent.amount
        if not amount.is_finite() or amount <= 0:
            return [f"amount must be a number > 0, got {amount}"]
        problems = []
        if not is_multiple(amount, lot):
            problems.append(f"amount {amount} is finer than the lot size {lot}")
        if amount < minimum:
            problems.append(f"amount {amount} is below the venue's minimum {minimum}")
        params = parent.params
        if isinstance(params, TwapParams):
            per_slice = floor_to_step(amount / params.slices, lot)
            if per_slice <= 0 or per_slice < minimum:
                problems.append(f"{params.slices} slices of {amount} are {clean(per_slice)} each, below the venue's minimum "
                                f"{minimum}: use fewer slices")
            if params.price_limit is not None and not is_multiple(params.price_limit, tick):  # it prices IOC children
                problems.append(f"price limit {params.price_limit} is finer than the tick size {tick}")
        elif isinstance(params, IcebergParams):
            if params.visible > amount:
                problems.append(f"visible amount {params.visible} is above the total {amount}")
            if not is_multiple(params.visible, lot):
                problems.append(f"visible amount {params.visible} is finer than the lot size {lot}")
            if params.visible < minimum:
                problems.append(f"visible amount {params.visible} is below the venue's minimum {minimum}")
        if isinstance(params, IcebergParams | LimitThenMarketParams) and not is_multiple(params.price, tick):
            problems.append(f"price {params.price} is finer than the tick size {tick}")
        return problems

    def _add(self, parent: ParentOrder) -> AlgoRunner:
        runner = _RUNNERS[parent.kind](self.engine, parent, on_launch=self._listen)
        self._runners[parent.id] = runner
        return runner

    # -- controlling --------------------------------------------------------------------------

    async def pause(self, algo_id: str) -> ParentOrder:
        """No new child until resumed; the open children are cancelled."""
        runner = self._get(algo_id)
        await runner.pause()
        return runner.parent.model_copy(deep=True)

    async def resume(self, algo_id: str) -> ParentOrder:
        runner = self._get(algo_id)
        await runner.resume()
        return runner.parent.model_copy(deep=True)

    async def cancel(self, algo_id: str) -> ParentOrder:
        """Stop the algorithm for good and cancel its open children."""
        runner = self._get(algo_id)
        await runner.cancel()
        return runner.parent.model_copy(deep=True)

    # -- reading ------------------------------------------------------------------------------

    def list(self) -> list[ParentOrder]:
        return [r.parent.model_copy(deep=True) for _, r in sorted(self._runners.items())]

    def get(self, algo_id: str) -> ParentOrder | None:
        runner = self._runners.get(algo_id)
        return runner.parent.model_copy(deep=True) if runner else None

    async def children(self, algo_id: str) -> list[Order]:
        """The parent's child orders as the engine has them now (for an expandable orders row)."""
        found = [await self.engine.get_order_by_id(cid) for cid in self._get(algo_id).parent.child_ids]
        return [o for o in found if o is not None]

    def _get(self, algo_id: str) -> AlgoRunner:
        runner = self._runners.get(algo_id)
        if runner is None:
            raise EngineError(f"unknown algorithm {algo_id!r}")
        return runner

    # -- engine hooks -------------------------------------------------------------------------

    async def restore(self, state: Mapping[str, str]) -> None:
        """At start-up: bring back journaled parents with their children; resume or stop the
        ones that were working, as ``algos.on_restart`` says (HALTED always stops them)."""
        engine = self.engine
        parents = []
        for key, raw in state.items():
            if not key.startswith(TAG_PREFIX):
                continue
            try:
                parents.append(ParentOrder.model_validate_json(raw))
            except ValidationError as exc:
                self._note("error", f"algorithm state {key} could not be read ({_describe(exc)}); ignored")
        if not parents:
            return
        by_parent: dict[str, list[Order]] = {}
        for order in await engine.get_orders():
            if order.tag and order.tag.startswith(TAG_PREFIX):
                by_parent.setdefault(order.tag[len(TAG_PREFIX):], []).append(order)
        mode = engine.settings.algos.on_restart
        for parent in sorted(parents, key=lambda p: p.id):
            if parent.id[1:].isdigit():
                self._seq = max(self._seq, int(parent.id[1:]))
            runner = self._add(parent)
            for child in by_parent.get(parent.id, []):
                runner._record(child)  # noqa: SLF001 - children filled before the restart count
            if parent.status.is_final:
                continue
            if engine.trading_state is TradingState.HALTED:
                await runner.stop_at_restart("stopped at restart: trading is HALTED")
            elif mode == "stop":
                await runner.stop_at_restart("stopped at restart (algos.on_restart = stop)")
            elif parent.status is AlgoStatus.PAUSED:
                engine.register_algorithm(runner)  # the halt must still be able to stop it
                self._note("info", f"{runner.name} is still paused after the restart")
                continue
            else:
                await runner.journal("algo_resumed", {"restart": True})
                runner.launch()
                self._note("info", f"{runner.name} resumed after the restart ({parent.filled} of {parent.amount} "
                                   f"{parent.symbol} filled)")
                continue
            self._note("warning", f"{runner.name} {parent.reason} ({parent.filled} of {parent.amount} {parent.symbol} filled)")

    async def shutdown(self) -> None:
        """The engine is closing: stop every task but keep each parent's state for the restart."""
        for runner in list(self._runners.values()):
            await runner.shutdown()
        if self._router is not None:
            assert self._stream is not None
            self._stream.close()
            self._router.cancel()
            await asyncio.wait([self._router])
            self._router = None

    def _note(self, level: str, text: str) -> None:
        self.restart_notes.append(text)
        self.engine._notice(level, text)  # noqa: SLF001

    def _listen(self) -> None:
        """Follow the engine's events from the first launch on (not before: a subscriber costs
        the hot path an event per change, and an engine without algorithms needs none)."""
        if self._router is None:
            self._stream = self.engine.events()
            self._router = asyncio.create_task(self._route(self._stream), name="algo-events")

    async def _route(self, stream: EventStream) -> None:
        async for event in stream:
            if not isinstance(event, OrderUpdated):
                continue
            tag = event.order.tag
            if not tag or not tag.startswith(TAG_PREFIX):
                continue
            runner = self._runners.get(tag[len(TAG_PREFIX):])
            if runner is None:
                continue
            try:
                await runner.on_child(event.order)
            except Exception as exc:  # noqa: BLE001 - one bad update must not end the routing
                self.engine._notice("error", f"{runner.name}: child update {event.order.id} not booked: {exc}")  # noqa: SLF001
