"""Keeps a ccxt venue's orders and prices in step with the exchange.

* Orders: ccxt.pro streams (``watch_orders`` + ``watch_my_trades``) where the exchange has
  them; REST polling otherwise, or while a stream is down, on an adaptive schedule
  (``PollSchedule``): one open-orders read per symbol with something due, and a lookup only
  for orders that left the book. Every answer, streamed or polled, leaves through the same
  outbox as a ``VenueReport`` that the engine applies at its next tick.
* Prices for marks: ``watch_ticker`` streams, else ticker reads every ``price_poll_seconds``
  (one ``fetch_tickers`` when several symbols are due), for the symbols of tracked orders and
  of positions.
* Markets: reloaded every ``markets_refresh_minutes`` so precision, limits and fees follow the
  exchange.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any

from core.config import TrackingSettings
from core.errors import VenueError, VenueUnavailable
from core.models import Order, OrderStatus
from core.venues.base import VenueFill, VenueReport, VenueUpdates
from core.venues.ccxt_parse import quote_from_ticker
from core.venues.ccxt_streams import CcxtStreams, State, open_stream_exchange
from core.venues.tracker import PollSchedule

if TYPE_CHECKING:
    from core.venues.ccxt_venue import CcxtVenue

ZERO = Decimal(0)
_MARKETS_RETRY = 60.0  # seconds before a failed market reload is tried again
_ORPHANS = 256  # trades of orders not (yet) known kept at most: other desks' trades stream too


class CcxtTracker:
    def __init__(self, venue: CcxtVenue, settings: TrackingSettings,
                 urgent_symbols: Callable[[], Iterable[str]] = tuple) -> None:
        self.venue = venue
        self.settings = settings
        self.clock = venue.clock
        self.schedule = PollSchedule(fast=settings.fast_poll_seconds, slow=settings.slow_poll_seconds,
                                     fresh_for=settings.fresh_seconds, streamed=settings.streamed_poll_seconds)
        self.streams: CcxtStreams | None = None
        # set whenever a stream delivers or changes state: a client (a test) can await news
        # instead of sleeping
        self.activity = asyncio.Event()
        # priced at every poll, not every price_poll_seconds: held triggers fire on the first price past them
        self._urgent_symbols = urgent_symbols
        self._outbox: list[VenueReport] = []
        self._stream_prices: dict[str, Decimal] = {}
        self._finished: set[str] = set()
        self._marked: set[str] = set()  # symbols to keep marking: positions, anything that filled
        self._price_due: dict[str, float] = {}
        self._markets_due: float | None = None
        # stream bookkeeping, by client order id
        self._latest: dict[str, dict[str, Any]] = {}  # the last order update not reported yet
        self._trades: dict[str, list[VenueFill]] = {}  # streamed trades not reported yet
        self._trade_ids: dict[str, set[str]] = {}  # every streamed trade, to count each once
        self._streamed: dict[str, Decimal] = {}  # the amount those trades add up to
        self._booked: dict[str, Decimal] = {}  # filled amount already covered by reported fills
        self._reported: dict[str, OrderStatus] = {}  # the last status a stream report carried
        self._was_up: set[str] = set()  # streams that worked since they last went down
        self._cid_by_oid: dict[str, str] = {}
        self._orphans: dict[str, list[dict[str, Any]]] = {}  # venue order id -> trades before their order
        self._misses: dict[str, tuple[float, int]] = {}  # released triggers never found: (first miss, misses)

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self, config: dict[str, Any]) -> None:
        """After the markets are loaded: schedule their refresh, open the streams."""
        now = self.clock.monotonic()
        refresh = self.settings.markets_refresh_minutes * 60
        self._markets_due = now + refresh if refresh > 0 else None
        if not self.settings.websockets:
            return
        v = self.venue
        try:
            ex = open_stream_exchange(v.name, config, v._ex, sandbox=v._sandbox, api_url=v._api_url)
        except Exception:  # noqa: BLE001 - no streams is a slower venue, not a broken one
            ex = None
        if ex is None:
            return
        self.streams = CcxtStreams(ex, self.clock, retry_initial=self.settings.stream_retry_initial_seconds,
                                   retry_max=self.settings.stream_retry_max_seconds, on_state=self._stream_state)
        if ex.apiKey:  # own orders and trades need the keys; tickers do not
            if self.streams.supports("watchOrders"):
                self.streams.start("orders", ex.watch_orders, self._on_orders)
            if self.streams.supports("watchMyTrades"):
                self.streams.start("trades", ex.watch_my_trades, self._on_trades)

    async def close(self) -> None:
        if self.streams is not None:
            await self.streams.close()

    def watch_prices(self, symbols: Iterable[str]) -> None:
        """Keep these symbols marked (the positions a restart restored)."""
        self._marked.update(symbols)

    def stream_state(self, key: str) -> State:
        return "off" if self.streams is None else self.streams.state(key)

    # -- the poll ---------------------------------------------------------------------------------------

    async def poll(self) -> VenueUpdates:
        """What changed since the last poll: streamed reports plus whatever was due a REST look.
        Requests grow with what is due, not with what rests."""
        now = self.clock.monotonic()
        self._drop_finished()
        self._sync(now)
        errors: list[VenueError] = []
        if self._markets_due is not None and now >= self._markets_due:
            try:
                await self.venue.reload_markets()
                if self.streams is not None:
                    self.streams.exchange.set_markets_from_exchange(self.venue._ex)
                self._markets_due = now + self.settings.markets_refresh_minutes * 60
            except VenueError as exc:
                errors.append(exc)
                self._markets_due = now + min(_MARKETS_RETRY, self.settings.markets_refresh_minutes * 60)
        await self._poll_orders(now, errors)
        prices = await self._poll_prices(now, errors)
        reports, self._outbox = self._outbox, []
        # Orders reported final are dropped only at the next poll, after the engine applied the
        # report: a tick that fails half-way must not lose a fill that was already read.
        self._finished.update(r.client_order_id for r in reports if not r.status.is_live)
        if errors and not reports and not prices:
            raise errors[0]  # nothing else to hand over: let the engine say the venue is failing
        return VenueUpdates(reports, prices)

    def requeue(self, reports: list[VenueReport]) -> None:
        """Reports a poll took but could not hand over (what followed them failed): first out at
        the next poll, so no fill already read is lost."""
        self._outbox[:0] = reports

    def _drop_finished(self) -> None:
        tracked = self.venue._tracked
        done = self._finished | {cid for cid, o in tracked.items() if o.status.is_final}  # e.g. cancelled by request
        self._finished = set()
        # final by the desk's word, or short of its fills: kept until a lookup shows the
        # exchange's own final state with every fill
        done -= self.venue._unsettled
        for cid in done:
            order = tracked.pop(cid, None)
            if order is not None and order.filled > 0:
                self._marked.add(order.symbol)  # it left a position (fills of the submit answer too)
            self._forget(cid)

    def _forget(self, cid: str) -> None:
        self.venue._unsettled.discard(cid)
        self.schedule.forget(cid)
        self._latest.pop(cid, None)
        self._trades.pop(cid, None)
        self._trade_ids.pop(cid, None)
        self._streamed.pop(cid, None)
        self._booked.pop(cid, None)
        self._reported.pop(cid, None)
        self._misses.pop(cid, None)
        for oid in [o for o, c in self._cid_by_oid.items() if c == cid]:
            del self._cid_by_oid[oid]

    def _sync(self, now: float) -> None:
        """Schedule orders the venue started tracking (submitted, restored) since the last poll."""
        tracked = self.venue._tracked
        streamed = self._orders_streamed()
        for cid, order in tracked.items():
            if cid not in self.schedule:
                self.schedule.add(cid, order.symbol, now, streamed=streamed)
        for cid in self.schedule.keys():
            if cid not in tracked:
                self._forget(cid)

    def _orders_streamed(self) -> bool:
        return self.streams is not None and self.streams.up("orders")

    def _known_filled(self, cid: str, order: Order) -> Decimal:
        return max(self._booked.get(cid, ZERO), order.filled)

    # -- orders over REST -------------------------------------------------------------------------------

    async def _poll_orders(self, now: float, errors: list[VenueError]) -> None:
        v = self.venue
        streamed = self._orders_streamed()
        for symbol, keys in sorted(self.schedule.due(now).items()):
            try:
                if v._ex.has.get("fetchOpenOrders"):
                    await self._read_symbol(symbol, now, streamed)  # one request covers the symbol
                else:
                    for cid in keys:
                        await self._look_up(cid, now, streamed)
            except VenueError as exc:
                errors.append(exc)
                self.schedule.retry(keys, now, getattr(exc, "retry_after", None))

    async def _read_symbol(self, symbol: str, now: float, streamed: bool) -> None:
        v = self.venue
        open_now = {r.client_order_id: r for r in await v.fetch_open_orders(symbol)}
        for cid in self.schedule.of_symbol(symbol):
            order = v._tracked.get(cid)
            if order is None:
                continue
            seen = open_now.get(cid)
            if seen is None:  # it left the book (filled, cancelled, expired) or is not visible yet
                await self._look_up(cid, now, streamed)
                continue
            self._misses.pop(cid, None)
            # partly filled while resting, or resting while the engine still waits for the lost
            # answer of its submit (found in the book: it settles now, not at the next lookup)
            changed = seen.filled > self._known_filled(cid, order) or order.status is OrderStatus.UNRESOLVED
            if changed:
                seen.fills = await v._fills(order, seen)
                self._booked[cid] = seen.filled
                self._trade_ids.setdefault(cid, set()).update(f.trade_id for f in seen.fills)
                self._outbox.append(seen)
                self._marked.add(order.symbol)
            self.schedule.looked(cid, now, changed=changed, streamed=streamed)

    async def _look_up(self, cid: str, now: float, streamed: bool) -> None:
        order = self.venue._tracked[cid]
        report = await self.venue.fetch_order(order)
        if report is None:
            self.venue._unsettled.discard(cid)  # the exchange no longer knows it: nothing more to read
            report = self._never_sent(cid, order, now)
        else:
            self._misses.pop(cid, None)
        if report is not None and order.status.is_final:
            report.status = order.status  # settled for the desk: only fills it missed are news
        changed = report is not None and (report.status is not order.status
                                          or report.filled > self._known_filled(cid, order))
        if report is not None and changed:
            if report.fills:
                self._marked.add(order.symbol)
            self._booked[cid] = max(report.filled, self._booked.get(cid, ZERO))
            self._trade_ids.setdefault(cid, set()).update(f.trade_id for f in report.fills)
            self._outbox.append(report)
        self.schedule.looked(cid, now, changed=changed, streamed=streamed)

    def _never_sent(self, cid: str, order: Order, now: float) -> VenueReport | None:
        """The end of a released trigger that never reached the exchange, or None while unsure.

        A held trigger that fired is sent under its own client order id; when that send failed
        without an answer (a timeout) the order stays triggered, with no exchange id, until a
        lookup finds it. No single miss proves it was never sent (``lookup_is_definitive`` is
        False: a fresh order may not be visible yet), and it is not unresolved, so the engine's
        own settling never gives up on it. The rule: missed by ``unsent_lookups`` lookups spread
        over at least ``unsent_seconds`` of the engine's clock, and not listed by the open-orders
        read of its symbol in between (a lookup happens here only when that read, where the
        exchange has one, did not list it), it never reached the exchange and is given up:
        rejected, the one end the state table allows a triggered order that never worked."""
        if order.status is not OrderStatus.TRIGGERED or not order.emulated or order.venue_order_id is not None:
            return None
        first, misses = self._misses.get(cid, (now, 0))
        misses += 1
        self._misses[cid] = (first, misses)
        if misses < self.settings.unsent_lookups or now - first < self.settings.unsent_seconds:
            return None
        return VenueReport(client_order_id=cid, status=OrderStatus.REJECTED, symbol=order.symbol,
                           error=f"never reached {self.venue.name}: triggered, but {misses} lookups by client order "
                                 f"id over {now - first:g} s found nothing")

    # -- prices -------------------------------------------------------------------------------------------

    async def _poll_prices(self, now: float, errors: list[VenueError]) -> dict[str, Decimal]:
        v = self.venue
        urgent = set(self._urgent_symbols())
        symbols = ({o.symbol for o in v._tracked.values()} | self._marked | urgent) & set(v.markets)
        prices, self._stream_prices = self._stream_prices, {}
        streams = self.streams
        if streams is not None and streams.supports("watchTicker"):
            for sym in symbols:
                streams.start(f"ticker:{sym}", partial(streams.exchange.watch_ticker, sym), partial(self._on_ticker, sym))
        due = sorted(s for s in symbols if (s in urgent or self._price_due.get(s, now) <= now)
                     and not (streams is not None and streams.up(f"ticker:{s}")))
        for sym in due:
            self._price_due[sym] = now + self.settings.price_poll_seconds
        try:
            if len(due) > 1 and v._ex.has.get("fetchTickers"):
                tickers = await v._call(v._ex.fetch_tickers, due, what="the tickers")
                for sym in due:
                    quote = quote_from_ticker(sym, tickers.get(sym) or {})
                    if quote is not None:
                        v._quotes[sym] = quote
                        prices[sym] = quote.last
            else:
                for sym in due:
                    quote = await v.fetch_quote(sym)
                    if quote is not None:
                        prices[sym] = quote.last
        except VenueUnavailable:
            pass  # stale prices for a moment beat losing the order reports
        except VenueError as exc:
            errors.append(exc)
        return prices

    # -- streams -----------------------------------------------------------------------------------------

    def _stream_state(self, key: str, state: State) -> None:
        self.activity.set()
        if state == "up":
            self._was_up.add(key)
            return
        if state != "down" or key not in self._was_up:
            return  # a stream that never worked changes nothing: polling never stopped
        self._was_up.discard(key)
        now = self.clock.monotonic()
        if key == "orders":
            self.schedule.hurry(self.schedule.keys(), now)  # polling takes over at once
        elif key == "trades":
            self.schedule.hurry(list(self._latest), now)  # updates waiting for their trades
        elif key.startswith("ticker:"):
            self._price_due[key.removeprefix("ticker:")] = now

    async def _on_ticker(self, symbol: str, ticker: dict[str, Any]) -> None:
        quote = quote_from_ticker(symbol, ticker)
        if quote is not None:
            self.venue._quotes[symbol] = quote
            self._stream_prices[symbol] = quote.last
        self.activity.set()

    async def _on_orders(self, raws: list[dict[str, Any]]) -> None:
        for raw in raws:
            cid = raw.get("clientOrderId")
            if not cid or cid not in self.venue._tracked:
                continue  # another desk's order, or one no longer followed
            oid = raw.get("id")
            if oid is not None:
                self._cid_by_oid[str(oid)] = cid
                for t in self._orphans.pop(str(oid), []):
                    await self._add_trade(cid, t)
            self._latest[cid] = raw
            await self._emit(cid)
        self.activity.set()

    async def _on_trades(self, trades: list[dict[str, Any]]) -> None:
        for t in trades:
            oid = str(t.get("order"))
            cid = self._cid_by_oid.get(oid) or next(
                (c for c, o in self.venue._tracked.items() if o.venue_order_id == oid), None)
            if cid is None:
                self._orphans.setdefault(oid, []).append(t)
                while len(self._orphans) > _ORPHANS:
                    del self._orphans[next(iter(self._orphans))]
                continue
            if await self._add_trade(cid, t):
                await self._emit(cid)
        self.activity.set()

    async def _add_trade(self, cid: str, t: dict[str, Any]) -> bool:
        """Keep a streamed trade of ``cid`` until it is reported; False if it was seen before."""
        order = self.venue._tracked[cid]
        await self.venue._price_fees(order.symbol, [t])  # a BNB fee is valued at the BNB price
        fill = self.venue._fill(order.symbol, t, str(t.get("order")))
        seen = self._trade_ids.setdefault(cid, set())
        if fill.trade_id in seen:
            return False
        seen.add(fill.trade_id)
        self._streamed[cid] = self._streamed.get(cid, ZERO) + fill.amount
        self._trades.setdefault(cid, []).append(fill)
        return True

    async def _emit(self, cid: str) -> None:
        """Turn what the streams said about ``cid`` into one report once it is complete: an order
        update whose filled amount its trades do not cover yet waits for them.

        What is covered is the largest of three counts, each never above the truth: the engine's
        booked fills, the last authoritative filled amount reported, and the streamed trades
        (each counted once). Trades alone are reported as a partial fill: the engine books them
        (de-duplicated by trade id) and calls the order filled when its own fills add up."""
        v = self.venue
        order = v._tracked.get(cid)
        if order is None:
            return
        now = self.clock.monotonic()
        known = self._known_filled(cid, order)
        have = max(known, self._streamed.get(cid, ZERO))
        raw = self._latest.get(cid)
        fills = self._trades.get(cid, [])
        if raw is not None:
            report = v._from_raw(raw, cid)
            report.amount = None  # the engine's amount stays the truth
            if report.filled > have:
                if self.stream_state("trades") in ("starting", "up"):
                    # its trades are on their way; a REST look settles it if they never come
                    self.schedule.hurry([cid], now + self.schedule.fast)
                    return
                try:
                    fills = await v._fills(order, report, raw)  # no trade stream: this order's trades
                except VenueError:
                    self.schedule.hurry([cid], now)
                    return
            report.fills = list(fills)
        elif fills:
            oid = order.venue_order_id or next((o for o, c in self._cid_by_oid.items() if c == cid), None)
            report = VenueReport(client_order_id=cid, status=OrderStatus.PARTIALLY_FILLED, venue_order_id=oid,
                                 filled=have, fills=list(fills))
        else:
            return
        self._latest.pop(cid, None)
        self._trades.pop(cid, None)
        if not report.fills and report.status in (order.status, self._reported.get(cid)) and report.filled <= known:
            return  # nothing new (e.g. the "new" event of an order the submit answer already acked)
        self._booked[cid] = max(self._booked.get(cid, ZERO), report.filled)
        self._reported[cid] = report.status
        if report.fills:
            self._marked.add(order.symbol)
        self._outbox.append(report)
        self.schedule.changed(cid, now, streamed=self._orders_streamed())
