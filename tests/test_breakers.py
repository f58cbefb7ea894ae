"""Circuit breakers trip on the fill or mark update that crosses them (no timer), move the
trading state with their name and figures as the reason, and stay quiet just inside."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

from core import Engine, ManualClock, OrderRequest, OrderStatus, TradingState
from core.events import Notice
from core.config import Settings
from core.venues.sim import SimDials

from .conftest import on_clock, paper


def settings(**breakers: object) -> Settings:
    off = {"max_daily_loss": None, "max_daily_loss_pct": None, "max_drawdown_pct": None,
           "max_consecutive_losses": None, "max_rejects_per_minute": None}
    return Settings(breakers={**off, **breakers})  # type: ignore[arg-type]


async def buy_then_mark(engine: Engine, clock: ManualClock, amount: str, mark: str) -> None:
    order = await engine.place_market_order("BTC/USDT", "buy", D(amount), leverage=D(3))
    assert order.status is OrderStatus.FILLED, order.error
    engine.venue.market.script("BTC/USDT", [mark])  # type: ignore[attr-defined]
    await on_clock(clock, engine.tick(), engine)


async def test_daily_loss_trips_on_the_mark_update_and_halts(db: Path, clock: ManualClock) -> None:
    # buy 1 BTC: fills 0.25 @51000.1, 0.5 @51000.6, 0.25 @51001.1 (avg 51000.6), taker fee 0.04%
    async with paper(db, clock, settings=settings(max_daily_loss=D(1000))) as engine:
        resting = await engine.place_order(OrderRequest(symbol="ETH/USDT", side="buy", type="limit",
                                                        amount=D("0.1"), price=D("3100")))
        await buy_then_mark(engine, clock, "1", "49900")  # loss ~1,100 + fees 20.4
        assert engine.trading_state is TradingState.HALTED
        assert "breaker daily_loss" in engine.trading_state_reason and "-1000" in engine.trading_state_reason
        assert (await engine.get_order_by_id(resting.id)).status is OrderStatus.CANCELLED  # type: ignore[union-attr]
        kinds = [e["kind"] for e in await engine.journal.events()]  # type: ignore[union-attr]
        assert kinds.index("breaker_tripped") < kinds.index("halted") < kinds.index("halt_report")


async def test_daily_loss_just_inside_the_limit_stays_active(db: Path, clock: ManualClock) -> None:
    async with paper(db, clock, settings=settings(max_daily_loss=D(1000))) as engine:
        await buy_then_mark(engine, clock, "1", "50100")  # loss ~900 + fees 20.4 < 1000
        status = await engine.get_account_status()
        assert -D(1000) < status.daily_pnl < -D(900)
        assert engine.trading_state is TradingState.ACTIVE


async def test_daily_loss_pct_of_start_of_day_equity(db: Path, clock: ManualClock) -> None:
    async with paper(db, clock, settings=settings(max_daily_loss_pct=D(1))) as engine:  # 1% of 100k = 1,000
        await buy_then_mark(engine, clock, "1", "50100")
        assert engine.trading_state is TradingState.ACTIVE
        engine.venue.market.script("BTC/USDT", ["49900"])  # type: ignore[attr-defined]
        await on_clock(clock, engine.tick(), engine)
        assert engine.trading_state is TradingState.HALTED
        assert "breaker daily_loss_pct" in engine.trading_state_reason


async def test_drawdown_from_the_equity_peak(db: Path, clock: ManualClock) -> None:
    async with paper(db, clock, settings=settings(max_drawdown_pct=D(2))) as engine:
        await buy_then_mark(engine, clock, "2", "53000")  # peak ~ +3,979
        assert engine.trading_state is TradingState.ACTIVE
        engine.venue.market.script("BTC/USDT", ["52000"])  # -2,000: 1.93% below the peak
        await on_clock(clock, engine.tick(), engine)
        assert engine.trading_state is TradingState.ACTIVE
        engine.venue.market.script("BTC/USDT", ["51900"])  # -2,200: 2.12%
        await on_clock(clock, engine.tick(), engine)
        assert engine.trading_state is TradingState.HALTED
        assert "breaker drawdown" in engine.trading_state_reason


async def test_consecutive_losses_move_to_reducing_by_default(db: Path, clock: ManualClock) -> None:
    async with paper(db, clock, settings=settings(max_consecutive_losses=3)) as engine:
        for n in range(3):
            await engine.place_market_order("BTC/USDT", "buy", D("0.1"))
            await engine.place_market_order("BTC/USDT", "sell", D("0.1"))  # loses the spread + fees
            expected = TradingState.REDUCING if n == 2 else TradingState.ACTIVE
            assert engine.trading_state is expected, n
        assert "3 losing trades in a row" in engine.trading_state_reason
        refused = await engine.place_market_order("BTC/USDT", "buy", D("0.1"))
        assert refused.status is OrderStatus.REJECTED and "REDUCING" in (refused.error or "")


async def test_a_win_resets_the_losing_streak(db: Path, clock: ManualClock) -> None:
    async with paper(db, clock, settings=settings(max_consecutive_losses=2)) as engine:
        await engine.place_market_order("BTC/USDT", "buy", D("0.1"))
        await engine.place_market_order("BTC/USDT", "sell", D("0.1"))  # loss 1
        await engine.place_market_order("BTC/USDT", "buy", D("0.1"))
        engine.venue.market.script("BTC/USDT", ["51500"])  # type: ignore[attr-defined]
        await on_clock(clock, engine.tick(), engine)
        await engine.place_market_order("BTC/USDT", "sell", D("0.1"))  # a win
        await engine.place_market_order("BTC/USDT", "buy", D("0.1"))
        await engine.place_market_order("BTC/USDT", "sell", D("0.1"))  # loss 1 again
        assert engine.trading_state is TradingState.ACTIVE


async def test_rejects_per_minute_halt(db: Path, clock: ManualClock) -> None:
    async with paper(db, clock, SimDials(reject_rate=1.0), settings=settings(max_rejects_per_minute=3)) as engine:
        for _ in range(2):
            await engine.place_order(OrderRequest(symbol="BTC/USDT", side="buy", type="limit",
                                                  amount=D("0.01"), price=D("50000")))
        assert engine.trading_state is TradingState.ACTIVE
        clock.advance(61)  # the first two age out of the window
        for _ in range(2):
            await engine.place_order(OrderRequest(symbol="BTC/USDT", side="buy", type="limit",
                                                  amount=D("0.01"), price=D("50000")))
        assert engine.trading_state is TradingState.ACTIVE
        await on_clock(clock, engine.place_order(OrderRequest(symbol="BTC/USDT", side="buy", type="limit",
                                                              amount=D("0.01"), price=D("50000"))), engine)
        assert engine.trading_state is TradingState.HALTED
        assert "3 order rejects in the last minute" in engine.trading_state_reason


async def test_breaker_action_is_configurable(db: Path, clock: ManualClock) -> None:
    async with paper(db, clock, settings=settings(max_daily_loss=D(1000), daily_loss_action="REDUCING")) as engine:
        await buy_then_mark(engine, clock, "1", "49900")
        assert engine.trading_state is TradingState.REDUCING
        closing = await engine.place_market_order("BTC/USDT", "sell", D("0.5"))
        assert closing.status is OrderStatus.FILLED  # reducing orders still pass


async def test_an_equity_peak_reached_on_marks_survives_a_crash(db: Path, clock: ManualClock) -> None:
    """The peak moves with marks, but only fills journaled the ledger: after a crash the
    drawdown counted from the peak of the last fill, and a 2 % fall from the real peak went by."""
    engine = paper(db, clock, settings=settings(max_drawdown_pct=D(2)))
    await engine.start()
    await buy_then_mark(engine, clock, "2", "53000")  # peak ~ +3,979 on a mark, no fill since
    peak = (await engine.get_account_status()).equity_peak
    await engine.journal.close()  # type: ignore[union-attr]  # a crash: no clean close
    async with paper(db, clock, settings=settings(max_drawdown_pct=D(2))) as again:
        assert (await again.get_account_status()).equity_peak == peak
        again.venue.market.script("BTC/USDT", ["51900"])  # type: ignore[attr-defined]  # 2.12 % below it
        await on_clock(clock, again.tick(), again)
        assert again.trading_state is TradingState.HALTED
        assert "breaker drawdown" in again.trading_state_reason


async def test_the_start_of_day_equity_survives_a_crash(db: Path, clock: ManualClock) -> None:
    """A new day's starting equity was only journaled with the next fill: a restart rolled the
    day again from the equity it found, and the day's losses so far no longer counted."""
    engine = paper(db, clock, settings=settings())
    await engine.start()
    await buy_then_mark(engine, clock, "1", "52000")
    clock.advance(24 * 3600)  # the next trading day (UTC)
    await mark_only(engine, clock, "50000")  # the day rolls (from the equity at 52,000) and loses ~2,000
    loss = (await engine.get_account_status()).daily_pnl
    assert loss < -D(1900)
    await engine.journal.close()  # type: ignore[union-attr]  # a crash: no clean close
    async with paper(db, clock, settings=settings()) as again:
        await mark_only(again, clock, "50000")
        assert (await again.get_account_status()).daily_pnl == loss


async def mark_only(engine: Engine, clock: ManualClock, mark: str) -> None:
    engine.venue.market.script("BTC/USDT", [mark])  # type: ignore[attr-defined]
    await on_clock(clock, engine.tick(), engine)


async def test_marks_whose_write_failed_are_said_and_written_at_the_next_mark(db: Path, clock: ManualClock) -> None:
    async with paper(db, clock, settings=settings()) as engine:
        journal = engine.journal
        assert journal is not None
        stream, real_write, failing = engine.events(), journal.write, [1]

        def write(kind: str, **kw: object) -> object:  # the first write of the marks cannot be stored
            if kind == "ledger_marked" and failing[0]:
                failing[0] = 0
                return real_write("ledger_marked\udc80", **kw)  # type: ignore[arg-type]
            return real_write(kind, **kw)  # type: ignore[arg-type]

        journal.write = write  # type: ignore[method-assign]
        await buy_then_mark(engine, clock, "1", "52000")  # the peak rises: its write fails
        await journal.flush()
        assert any(isinstance(e, Notice) and "not journaled" in e.text for e in stream.drain())
        assert "ledger_marked" not in [e["kind"] for e in await journal.events()]
        await mark_only(engine, clock, "52000")  # the same peak: written this time
        await journal.flush()
        assert [e["kind"] for e in await journal.events()].count("ledger_marked") == 1
