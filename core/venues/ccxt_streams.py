"""Websocket streams of a ccxt exchange (``ccxt.pro``): own orders, own trades, tickers.

Each stream is one asyncio task looping over a ``watch_*`` call and handing what arrives to a
callback. A stream is trusted ("up") only once it has delivered something: a quiet or
half-open connection proves nothing, and until then the venue keeps polling. Any error marks
it "down" (the venue polls again at once) and it is retried with exponential backoff and
jitter on the engine's clock (tenacity); a stream that had been up starts its backoff afresh.

The stream exchange is a second ccxt instance of the same class from ``ccxt.pro``, sharing the
REST instance's markets: a websocket fault never touches the REST path that places orders.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any, Literal

from core.clock import Clock

State = Literal["off", "starting", "up", "down"]
StateCallback = Callable[[str, State], None]

log = logging.getLogger(__name__)


def open_stream_exchange(exchange_id: str, config: dict[str, Any], rest: Any, *, sandbox: bool = False,
                         api_url: str | None = None) -> Any | None:
    """The ``ccxt.pro`` twin of ``rest`` (same config, same markets), or None without one."""
    try:
        import ccxt.pro as ccxt_pro
    except ImportError:  # pragma: no cover - ccxt.pro ships with ccxt >= 4
        return None
    cls = getattr(ccxt_pro, exchange_id, None)
    if cls is None:
        return None
    ex = cls({**config, "options": dict(config.get("options") or {})})
    if sandbox:
        ex.set_sandbox_mode(True)
    if api_url:
        from core.venues.ccxt_venue import point_at

        point_at(ex, api_url)
        api = ex.urls.get("api")
        if isinstance(api, dict) and "ws" in api:
            api["ws"] = _ws_scheme(api["ws"])
    ex.set_markets_from_exchange(rest)
    _retrieve_orphaned_rejections(ex)
    return ex


def _retrieve_orphaned_rejections(exchange: Any) -> None:
    """ccxt.pro makes futures nobody awaits (binance's ``authenticate:signature`` marker, meant
    for concurrent subscribers) and rejects them with every other future when a handshake fails:
    asyncio then logs "Future exception was never retrieved" for each attempt. Retrieve them as
    they settle. The error itself is not lost: the ``watch_*`` call awaiting its own future
    raises it into ``CcxtStreams._session`` (stream down, polling, a warning line)."""
    make_client = exchange.client

    def client(url: str) -> Any:
        c = make_client(url)
        if not getattr(c, "_tradedesk_retrieves", False):
            c._tradedesk_retrieves = True
            make_future = c.future

            def future(message_hash: Any) -> Any:
                f = make_future(message_hash)
                f.add_done_callback(_retrieve)
                return f

            c.future = future
        return c

    exchange.client = client


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and (exc := future.exception()) is not None:
        log.debug("stream future rejected: %s: %s", type(exc).__name__, exc)


def _ws_scheme(url: Any) -> Any:
    """``point_at`` rebases on an http(s) base; websocket URLs take the ws(s) scheme."""
    if isinstance(url, dict):
        return {k: _ws_scheme(v) for k, v in url.items()}
    if isinstance(url, str) and url.startswith("http"):
        return "ws" + url[len("http"):]
    return url


class CcxtStreams:
    def __init__(
        self,
        exchange: Any,
        clock: Clock,
        *,
        retry_initial: float,
        retry_max: float,
        on_state: StateCallback,
    ) -> None:
        self.exchange = exchange
        self.clock = clock
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._on_state = on_state
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._state: dict[str, State] = {}
        self.errors: dict[str, str] = {}  # the last error of each stream, for diagnostics
        self._closed = False  # a poll still running at close must not start a stream nobody ends

    def supports(self, method: str) -> bool:
        return bool(self.exchange.has.get(method))

    def state(self, key: str) -> State:
        return self._state.get(key, "off")

    def up(self, key: str) -> bool:
        return self._state.get(key) == "up"

    def running(self, key: str) -> bool:
        return key in self._tasks

    def start(self, key: str, watch: Callable[[], Awaitable[Any]], deliver: Callable[[Any], Awaitable[None]]) -> None:
        """Keep ``watch`` streaming into ``deliver`` under ``key`` until ``close``."""
        if key in self._tasks or self._closed:
            return
        self._set(key, "starting")
        self._tasks[key] = asyncio.get_running_loop().create_task(self._keep(key, watch, deliver), name=f"stream {key}")

    async def close(self) -> None:
        self._closed = True
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError, Exception):
                await task
        with suppress(Exception):  # closing must not fail because a socket already died
            await self.exchange.close()

    def _set(self, key: str, state: State) -> None:
        if self._state.get(key) != state or state == "down":  # every failure is news, not only the first
            self._state[key] = state
            self._on_state(key, state)

    async def _keep(self, key: str, watch: Callable[[], Awaitable[Any]],
                    deliver: Callable[[Any], Awaitable[None]]) -> None:
        from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

        while True:
            # A fresh backoff for each connection that worked: a drop after hours of streaming
            # is retried quickly, a dead endpoint less and less often.
            retrying = AsyncRetrying(
                retry=retry_if_exception_type(Exception),  # CancelledError is not one: close() ends the loop
                wait=wait_exponential_jitter(initial=self._retry_initial, max=self._retry_max,
                                             jitter=self._retry_initial / 2),
                sleep=self.clock.sleep,
            )
            await retrying(self._session, key, watch, deliver)
            await self.clock.sleep(self._retry_initial)

    async def _session(self, key: str, watch: Callable[[], Awaitable[Any]],
                       deliver: Callable[[Any], Awaitable[None]]) -> None:
        """Stream until an error. Raises if nothing came through (retried with growing backoff);
        returns after a drop that followed a working stream."""
        spoke = False
        try:
            while True:
                data = await watch()
                spoke = True
                self._set(key, "up")
                await deliver(data)
        except Exception as exc:  # noqa: BLE001 - any failure means: poll instead, retry later
            self.errors[key] = f"{type(exc).__name__}: {exc}"
            # a line for each stream that stops (not for every retry of a dead endpoint)
            level = logging.DEBUG if self._state.get(key) == "down" else logging.WARNING
            log.log(level, "%s %s stream down, polling instead: %s", getattr(self.exchange, "id", "exchange"), key,
                    self.errors[key])
            self._set(key, "down")
            if not spoke:
                raise
