"""Write ingesta stream handlers and producers in Python.

An ingesta deployment consumes Kafka partitions and hands each batch of
records to a WebAssembly component. This package turns a plain Python class
into that component: subclass :class:`Handler` (WIT world ``consumer``) or
:class:`Producer` (world ``producer``), name it in ``pyproject.toml``'s
``[tool.ingesta]`` table, and ``ingesta build`` bundles it with CPython
through componentize-py::

    import ingesta
    from ingesta import config

    class Upper(ingesta.Handler):
        def on_record(self, record: ingesta.Record) -> None:
            text = record.value_str().upper()
            ingesta.emit(config.require("output_topic"), record.key, text)

Semantics (the same as the Rust SDK's):

* Delivery is at-least-once: a batch may be handled again after a failure
  or a restart, so handlers should tolerate redelivery.
* One handler object lives per partition instance, created on the first
  call (not at import, which happens at build time) and kept across calls.
* Records passed to :func:`emit` and friends are published only if the
  whole call succeeds; a failed call publishes nothing.
* :class:`Retryable` asks the runner to retry the batch with backoff;
  :class:`Permanent` says the input can never succeed. Any other exception
  traps the instance, which the runner treats like a crash.

Natively, :mod:`ingesta.testing` runs handlers against hand-made batches so
they can be unit-tested with ``python -m unittest``.
"""

from . import config, log
from ._json import JsonError, from_json, to_json, to_json_str
from .batch import Batch, Headers, Record, TimestampType
from .emit import Message, Payload, emit, emit_json, forward
from .errors import Error, ErrorClass, Permanent, Retryable
from .handler import Handler
from .log import debug, error, info, trace, warn
from .producer import Producer, Request, Response, Tick

__version__ = "0.1.0"

__all__ = [
    "Batch",
    "Error",
    "ErrorClass",
    "Handler",
    "Headers",
    "JsonError",
    "Message",
    "Payload",
    "Permanent",
    "Producer",
    "Record",
    "Request",
    "Response",
    "Retryable",
    "Tick",
    "TimestampType",
    "config",
    "debug",
    "emit",
    "emit_json",
    "error",
    "forward",
    "from_json",
    "info",
    "log",
    "to_json",
    "to_json_str",
    "trace",
    "warn",
]
