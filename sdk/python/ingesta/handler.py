"""The :class:`Handler` base class and the per-call dispatch behind
:func:`ingesta._component.export_consumer` and :func:`ingesta.testing.run`."""

from __future__ import annotations

import json

from .batch import Batch, RawBatch, Record
from .emit import end_call
from .errors import Error, from_json_error

__all__ = ["Handler"]


class Handler:
    """A stream handler: receives each batch of one partition, in offset order.

    Override :meth:`on_record` for record-at-a-time logic, or
    :meth:`on_batch` to see the whole batch (to aggregate, or to skip
    per-record work entirely). Fail a call by raising
    :class:`ingesta.Retryable` or :class:`ingesta.Permanent`.

    One object lives per partition instance: it is created (with no
    arguments) on the first call, not when the module is imported, and kept
    across calls, so attributes can carry state from batch to batch. That
    state is lost when the instance is recycled (after a trap, a rebalance
    or a restart), and batches are delivered at least once, so treat it as
    a cache rather than a source of truth. Read configuration in
    ``__init__`` or the handler methods, never at import time (where it
    raises). An :class:`ingesta.Error` raised by ``__init__`` fails the
    call, and the object is created again on the next one.

    A subclass must override :meth:`on_record` or :meth:`on_batch`;
    ``ingesta build`` refuses one that overrides neither (a misspelled
    method name would otherwise accept every batch).
    """

    def on_record(self, record: Record) -> None:
        """Handles one record. The default does nothing.

        An exception fails the whole batch: nothing emitted during the call
        is published, and the default :meth:`on_batch` blames this record.
        """

    def on_batch(self, batch: Batch) -> None:
        """Handles one batch. The default calls :meth:`on_record` for each
        record in order and stops at the first :class:`ingesta.Error`,
        marking it with the failing record's index."""
        for record in batch:
            try:
                self.on_record(record)
            except Error as err:
                raise err.at_record(record.index)
            except json.JSONDecodeError as err:
                raise from_json_error(err).at_record(record.index) from err


def run(handler: Handler, batch: RawBatch) -> None:
    """Runs one call: the handler, then the single flush of its output."""
    end_call(lambda: _on_batch(handler, Batch(batch)), lambda _: True)


def _on_batch(handler: Handler, batch: Batch) -> None:
    try:
        handler.on_batch(batch)
    except json.JSONDecodeError as err:
        raise from_json_error(err) from err
