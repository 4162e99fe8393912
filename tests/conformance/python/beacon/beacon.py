"""Conformance fixture ``beacon``: every request's body is published unchanged
to config ``topic``, keyed by the ``x-key`` header, and answered 202; every
tick publishes ``tick <seq>`` keyed ``tick`` (see README.md)."""

from __future__ import annotations

import ingesta
from ingesta import Request, Response, Tick, config


class Beacon(ingesta.Producer):
    """The smallest producer, plus a tick."""

    def __init__(self) -> None:
        self.topic: str | None = None
        """Config key ``topic``, read on the first call that finds it."""

    def _topic(self) -> str:
        if self.topic is None:
            self.topic = config.require("topic")
        return self.topic

    def on_request(self, request: Request) -> Response:
        """Publishes the body unchanged, keyed by ``x-key`` (null without one)."""
        ingesta.emit(self._topic(), request.header("x-key"), request.body)
        return Response.accepted()

    def on_tick(self, tick: Tick) -> None:
        """Publishes ``tick <seq>`` keyed ``tick``."""
        ingesta.emit(self._topic(), "tick", f"tick {tick.seq}")
