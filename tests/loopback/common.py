"""What the loopback exchange servers (:mod:`.binance`, :mod:`.okx`) share.

* :class:`LoopbackServer`: the in-process ``aiohttp.web`` server on ``host``:0 (start/stop, async
  context manager), the fault dials every loopback offers, request counting and the server clock;
* :class:`Funds`: one asset's free and locked amounts, and the order-lock bookkeeping on them;
* :func:`crossed`: when a price reaches a resting limit order;
* :func:`ccxt_config`: the ccxt constructor config both ``make_ccxt_*`` helpers start from;
* :class:`CcxtRequests`: the ccxt REST requests this process has outstanding, for test drivers
  that move a ``ManualClock`` only while nothing waits on the wall clock or a socket.

Wire formats (error bodies, envelopes, signatures, decimal formatting) stay with each exchange.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Self

from aiohttp import web

if TYPE_CHECKING:
    import pytest

__all__ = ["DEFAULT_BALANCES", "CcxtRequests", "Funds", "LoopbackServer", "ccxt_config", "crossed"]

D = Decimal

DEFAULT_BALANCES: dict[str, Decimal] = {"USDT": D("1000000"), "BTC": D("10"), "ETH": D("100")}


# -- balances ---------------------------------------------------------------------------------------


@dataclass
class Funds:
    """One asset in the account: ``free`` to spend, ``locked`` by open orders."""

    free: Decimal = D(0)
    locked: Decimal = D(0)

    @property
    def total(self) -> Decimal:
        return self.free + self.locked

    def lock(self, amount: Decimal) -> None:
        self.free -= amount
        self.locked += amount

    def spend(self, amount: Decimal, held: Decimal) -> Decimal:
        """Spend ``amount`` for an order holding ``held`` locked: from its lock first, any rounding
        excess from free. Returns what the order still holds."""
        from_lock = min(amount, held)
        self.locked -= from_lock
        self.free -= amount - from_lock
        return held - from_lock

    def unlock(self, held: Decimal) -> None:
        """Give an order's remaining lock back to free."""
        self.locked -= held
        self.free += held


def crossed(buy: bool, limit: Decimal, price: Decimal) -> bool:
    """A resting buy is crossed when the price falls to or below its limit, a sell when it rises
    to or above."""
    return price <= limit if buy else price >= limit


# -- server -----------------------------------------------------------------------------------------


class LoopbackServer:
    """The shared part of a loopback server; a subclass routes requests in ``_dispatch``.

    Fault dials (plain attributes, set them at any time), applied by ``_faults`` in this order
    after the request is counted in ``requests``:

    * ``status_429_next_n``: the next N requests get the exchange's 429 (``_too_many_requests``).
    * ``status_5xx_next_n``: the next N requests get ``status_5xx_code`` (503) with a plain-text
      body, as a gateway in front of the API would answer.
    * ``delay_seconds``: every request waits this long before it is handled.

    and, applied by the subclass through ``_drop`` once an order is accepted:

    * ``drop_next_response_after_accept``: the order is booked (and matched) but its answer never
      comes: in ``drop_mode="hang"`` the server holds the request for ``drop_hold_seconds`` (or
      until ``stop()``) so the client times out; in ``drop_mode="reset"`` it aborts the connection.
    * ``time_offset_ms``: the server clock's offset from the local clock.
    """

    def __init__(self, host: str) -> None:
        self.host = host

        # fault dials
        self.status_429_next_n = 0
        self.status_5xx_next_n = 0
        self.status_5xx_code = 503
        self.delay_seconds = 0.0
        self.drop_next_response_after_accept = False
        self.drop_mode = "hang"  # "hang" (client times out) | "reset" (connection aborted)
        self.drop_hold_seconds = 5.0
        self.time_offset_ms = 0

        # observation
        self.requests: Counter[tuple[str, str]] = Counter()
        self.request_log: list[tuple[str, str, Any]] = []
        self.request_times: list[tuple[str, str, float]] = []  # (method, path, time.monotonic())

        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self.base_url = ""

    # -- lifecycle ------------------------------------------------------------------------------

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self._dispatch)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    async def start(self) -> str:
        """Start listening on ``host``:0; returns the base URL (``http://127.0.0.1:PORT``)."""
        if self._runner is not None:
            return self.base_url
        self._closing = asyncio.Event()
        app = web.Application()
        self._add_routes(app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self.host, 0)
        await site.start()
        self._runner = runner
        self.base_url = f"http://{self.host}:{runner.addresses[0][1]}"
        return self.base_url

    async def _on_stop(self) -> None:
        """What a subclass closes before the runner (websockets)."""

    async def stop(self) -> None:
        self._closing.set()  # releases requests held by drop_next_response_after_accept
        await self._on_stop()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- clock and counters -----------------------------------------------------------------------

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.time_offset_ms

    def count(self, method: str, path: str) -> int:
        return self.requests[(method.upper(), path)]

    # -- faults -----------------------------------------------------------------------------------

    def _too_many_requests(self) -> web.Response:
        raise NotImplementedError

    async def _faults(self) -> web.Response | None:
        """The answer the fault dials give this request instead of the exchange's, if any."""
        if self.status_429_next_n > 0:
            self.status_429_next_n -= 1
            return self._too_many_requests()
        if self.status_5xx_next_n > 0:
            self.status_5xx_next_n -= 1
            return web.Response(status=self.status_5xx_code, text=f"{self.status_5xx_code} Service Unavailable",
                                content_type="text/plain")
        if self.delay_seconds > 0:
            await self._hold(self.delay_seconds)
        return None

    async def _drop(self, request: web.Request) -> web.Response:
        """Lose the answer to an accepted request (``drop_next_response_after_accept``)."""
        self.drop_next_response_after_accept = False
        if self.drop_mode == "reset":
            if request.transport is not None:
                request.transport.abort()
        else:
            await self._hold(self.drop_hold_seconds)
            if request.transport is not None:
                request.transport.close()
        return web.Response(status=500, text="dropped")  # nobody is listening any more

    async def _hold(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
        except TimeoutError:
            pass


# -- ccxt wiring ------------------------------------------------------------------------------------


def ccxt_config(server: Any, ccxt_options: dict[str, Any], *, secret: str | None, api_key: str | None,
                timeout_ms: int, options: dict[str, Any] | None, **config: Any) -> dict[str, Any]:
    """The config of a real ccxt client for ``server``'s credentials.

    Rate limiting is off and ``timeout_on_exit`` is 0: ccxt's async ``close()`` otherwise sleeps
    250 ms (a grace period for TLS transports, which a plain-HTTP loopback does not have)."""
    return {
        "apiKey": server.api_key if api_key is None else api_key,
        "secret": server.api_secret if secret is None else secret,
        "enableRateLimit": False,
        "timeout": timeout_ms,
        "timeout_on_exit": 0,
        "options": {**ccxt_options, **(options or {})},
        **config,
    }


class CcxtRequests:
    """The ccxt REST requests outstanding in this process, each counted from its entry into
    ``Exchange.fetch2`` (before ccxt's own rate limiter) until its answer is parsed or it fails.

    Such a request waits on things a test's ``ManualClock`` does not move: the rate limiter
    (``enableRateLimit``, on in ``CcxtVenue``) sleeps on the wall clock until its token bucket
    refills, then the socket round trip to the loopback. A driver that jumps the clock while
    one is outstanding takes the wait for idle time (``conftest.on_clock``'s ``settle``).
    Not seen: a caller's own wall-clock pause between two requests (a retry's backoff).

    ``install(monkeypatch)`` wraps ``Exchange.fetch2`` for every ccxt async exchange (undone
    with the monkeypatch); ``settle()`` waits until none is outstanding.
    """

    def __init__(self) -> None:
        self.outstanding = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> Self:
        from ccxt.async_support.base.exchange import Exchange

        original = Exchange.fetch2
        counter = self

        async def fetch2(exchange: Any, *args: Any, **kwargs: Any) -> Any:
            counter.outstanding += 1
            counter._idle.clear()
            try:
                return await original(exchange, *args, **kwargs)
            finally:
                counter.outstanding -= 1
                if counter.outstanding == 0:
                    counter._idle.set()

        monkeypatch.setattr(Exchange, "fetch2", fetch2)
        return self

    async def settle(self) -> bool:
        """Wait until no request is outstanding; True if there was one to wait for."""
        if self.outstanding == 0:
            return False
        await self._idle.wait()
        return True
