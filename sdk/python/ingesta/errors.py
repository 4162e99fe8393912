"""The handler error types and how the runner treats them.

A handler fails a call by raising an :class:`Error`: :class:`Retryable`
("try again later", the runner retries the batch with backoff) or
:class:`Permanent` ("this input can never succeed", the record is
dead-lettered or the deployment stops, per its failure policy). Either way
nothing emitted during the call is published.

Any other exception is a bug in the handler and is treated like a Rust
panic: its traceback goes to the deployment's log and the instance traps
(the runner discards it, retries the records and eventually dead-letters a
record that keeps trapping). The one exception is :class:`json.JSONDecodeError`,
which the SDK turns into a permanent ``invalid JSON: ...`` error, as the
Rust SDK does for ``serde_json`` errors.
"""

from __future__ import annotations

import json
from enum import Enum

_U32_MAX = 0xFFFF_FFFF


class ErrorClass(Enum):
    """How the runner should treat a failed call."""

    RETRYABLE = "retryable"
    """Transient (a dependency was down, a rate limit): retry the batch with backoff."""
    PERMANENT = "permanent"
    """The input can never succeed (malformed event, failed validation)."""

    def __str__(self) -> str:
        return self.value


class Error(Exception):
    """Why a handler failed: a class, a message and, when known, the index
    of the offending record within the batch.

    Do not instantiate ``Error`` itself: raise :class:`Retryable` or
    :class:`Permanent` (or use :meth:`Error.retryable`,
    :meth:`Error.permanent`, :meth:`Error.new`). Catch ``Error`` to handle
    both.

    The record index lets the runner isolate a poison record without
    bisecting the batch; records before it are taken to be good.
    """

    error_class: ErrorClass
    """Retry or give up (set by each subclass)."""

    def __init__(self, message: str, *, record_index: int | None = None) -> None:
        if type(self) is Error:
            raise TypeError("raise ingesta.Retryable or ingesta.Permanent, not ingesta.Error")
        super().__init__(message)
        self._message = str(message)
        self._record_index: int | None = None
        if record_index is not None:
            self.at_record(record_index)

    @staticmethod
    def retryable(message: str) -> Retryable:
        """A transient failure; the runner retries the batch."""
        return Retryable(message)

    @staticmethod
    def permanent(message: str) -> Permanent:
        """A failure that retrying cannot fix."""
        return Permanent(message)

    @staticmethod
    def new(error_class: ErrorClass, message: str) -> Error:
        """An error of the given class."""
        if error_class is ErrorClass.RETRYABLE:
            return Retryable(message)
        return Permanent(message)

    def at_record(self, index: int) -> Error:
        """Blames the record at ``index`` (its position in the batch, as given
        by :attr:`ingesta.Record.index`) and returns this error.

        An index that does not fit the WIT's ``u32`` is dropped rather than
        truncated (the runner then bisects instead).
        """
        self._record_index = index if 0 <= index <= _U32_MAX else None
        return self

    @property
    def message(self) -> str:
        """The human-readable reason."""
        return self._message

    @property
    def record_index(self) -> int | None:
        """The index of the failed record in its batch, if known."""
        return self._record_index

    @property
    def is_retryable(self) -> bool:
        """Whether the runner will retry the batch."""
        return self.error_class is ErrorClass.RETRYABLE

    def __str__(self) -> str:
        text = f"{self.error_class}: {self._message}"
        if self._record_index is not None:
            text += f" (record {self._record_index})"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self._message!r}, record_index={self._record_index!r})"
        )


class Retryable(Error):
    """A transient failure (a dependency was down, a rate limit): the runner
    retries the batch with backoff."""

    error_class = ErrorClass.RETRYABLE


class Permanent(Error):
    """A failure that retrying cannot fix (a malformed event, a failed
    validation, a bad configuration): the record is dead-lettered or the
    deployment stops, per its failure policy."""

    error_class = ErrorClass.PERMANENT


def from_json_error(err: json.JSONDecodeError) -> Permanent:
    """Malformed JSON never gets better on retry: ``invalid JSON: ...``."""
    return Permanent(f"invalid JSON: {describe_json_error(err)}")


def describe_json_error(err: json.JSONDecodeError) -> str:
    """``err``'s reason and position, worded like ``serde_json``'s errors
    (``... at line L column C``)."""
    from ._json import JsonError

    if isinstance(err, JsonError):
        return str(err)
    return f"{err.msg} at line {err.lineno} column {err.colno}"
