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
    """Transient: rate limited, overloaded, down for maintenance, connection refused."""

    transient = True


class VenueTimeout(VenueUnavailable):
    """Ambiguous: the request may or may not have been acted on. Settle by a lookup."""
