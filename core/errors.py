"""Errors the core raises. Venue errors say whether the venue may still have acted."""

from __future__ import annotations


class TradedeskError(Exception):
    """Base class for errors a client should show to the trader."""


class EngineError(TradedeskError):
    """A request the engine cannot act on (unknown order, engine closed, ...)."""


class VenueError(TradedeskError):
    """A venue call failed. ``transient`` errors may be retried; others may not."""

    transient = False


class OrderRejected(VenueError):
    """The venue refused the order or the request: it definitely did not act on it."""


class OrderNotFound(VenueError):
    """The venue does not know the order."""


class VenueUnavailable(VenueError):
    """Transient: rate limited, overloaded, down for maintenance, connection refused.
    ``retry_after``: seconds the venue asked us to wait (a 429's Retry-After), if it said."""

    transient = True

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class VenueTimeout(VenueUnavailable):
    """Ambiguous: the request may or may not have been acted on. Settle by a lookup."""
