"""The halt: the one code path behind the HALT key, the button, the breakers and scripts.

Order of work: HALTED is persisted first (no new order can start while cancels are in flight),
running algorithms are stopped, every open order on every account is cancelled concurrently
(per-symbol cancel-all where the venue has it, per order otherwise) with transient errors
retried until a deadline, then the venue's open orders are read back to prove none is left.
A venue that does not answer is reported by the deadline; the other accounts still halt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from core.clock import Clock
from core.errors import VenueError

if TYPE_CHECKING:
    from core.config import HaltSettings

T = TypeVar("T")


class AccountHaltReport(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    account: str
    venue: str
    cancelled: list[str] = Field(default_factory=list)
    failed: dict[str, str] = Field(default_factory=dict)  # order id -> why
    remaining: list[str] = Field(default_factory=list)  # still open at the venue after the halt
    positions_closed: list[str] = Field(default_factory=list)
    positions_left: list[str] = Field(default_factory=list)
    verified: bool = False  # the venue's open orders were read back after the cancels
    error: str | None = None
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return (self.verified and not self.remaining and not self.failed and not self.positions_left
                and self.error is None)


class HaltReport(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    reason: str
    flatten: bool
    started_at: datetime
    finished_at: datetime
    seconds: float
    accounts: list[AccountHaltReport]

    @property
    def clean(self) -> bool:
        return all(a.clean for a in self.accounts)

    def summary(self) -> str:
        parts = []
        for a in self.accounts:
            bits = [f"{len(a.cancelled)} cancelled"]
            if a.failed:
                bits.append(f"{len(a.failed)} failed")
            if self.flatten:
                bits.append(f"{len(a.positions_closed)} positions closed")
            if a.remaining:
                bits.append(f"STILL OPEN: {', '.join(a.remaining)}")
            if a.positions_left:
                bits.append(f"POSITIONS LEFT: {', '.join(a.positions_left)}")
            if a.error:
                bits.append(a.error)
            if not a.verified:
                bits.append("NOT VERIFIED")
            parts.append(f"{a.account}@{a.venue}: " + ", ".join(bits))
        verdict = "book empty, verified" if self.clean else "ATTENTION: halt incomplete"
        return f"HALTED ({self.reason}) in {self.seconds * 1000:.0f} ms — {verdict}. " + "; ".join(parts)


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, VenueError) and exc.transient


async def retry_until(clock: Clock, deadline: float, settings: HaltSettings, call: Callable[[], Awaitable[T]]) -> T:
    """Call ``call`` until it succeeds, retrying only transient venue errors with exponential
    backoff and jitter, until ``deadline`` on ``clock``; then the last error is raised."""

    from tenacity import AsyncRetrying, retry_if_exception, wait_exponential_jitter  # only a halt needs it

    backoff = wait_exponential_jitter(
        multiplier=settings.retry_initial_seconds, max=settings.retry_max_seconds, jitter=settings.retry_initial_seconds,
    )

    def asked(state: Any) -> float:  # a rate limit's Retry-After: sooner gets the IP banned
        return getattr(state.outcome.exception(), "retry_after", None) or 0.0

    def out_of_time(state: Any) -> bool:
        return clock.monotonic() + asked(state) >= deadline

    retrying = AsyncRetrying(
        retry=retry_if_exception(_transient),
        wait=lambda state: max(backoff(state), asked(state)),
        stop=out_of_time,
        sleep=clock.sleep,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity re-raises the last error")


async def within(clock: Clock, seconds: float, coro: Awaitable[T]) -> T:
    """Await ``coro`` for at most ``seconds`` of ``clock`` time; TimeoutError after that."""
    task = asyncio.ensure_future(coro)
    timer = asyncio.ensure_future(clock.sleep(max(seconds, 0.0)))
    try:
        done, _ = await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
    if task in done:
        return task.result()
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, Exception):  # noqa: BLE001 - its failure is the timeout we report
        pass
    raise TimeoutError(f"no answer within {seconds:.1f} s")
