"""tradedesk's trading core: models, order state table, journal, venues, ledger and engine.

It never imports the UI; the console is one client of it, scripts and tests are others.
"""

from core.clock import Clock, ManualClock, SystemClock
from core.engine import Engine
from core.errors import EngineError, OrderNotFound, OrderRejected, TradedeskError, VenueError, VenueTimeout, VenueUnavailable
from core.config import ConfigError, Settings
from core.journal import Journal, JournalError
from core.models import (
    AccountStatus,
    Balance,
    Fill,
    Market,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    PositionSide,
    Side,
    TimeInForce,
    TradingState,
)
from core.venues.sim import SimDials, SimVenue
from core.venues.sim_market import SimMarket, SymbolSpec

__all__ = [
    "AccountStatus", "Balance", "Clock", "ConfigError", "Settings", "Engine", "EngineError", "Fill", "Journal", "JournalError",
    "ManualClock", "Market", "Order", "OrderNotFound", "OrderRejected", "OrderRequest", "OrderStatus",
    "OrderType", "Position", "PositionSide", "Side", "SimDials", "SimMarket", "SimVenue", "SymbolSpec",
    "SystemClock", "TimeInForce", "TradedeskError", "TradingState", "VenueError", "VenueTimeout",
    "VenueUnavailable",
]
