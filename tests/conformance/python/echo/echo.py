"""Conformance fixture ``echo``: the per-record consumer every SDK implements
byte for byte alike (see README.md for the spec)."""

from __future__ import annotations

import ingesta
from ingesta import Permanent, Record, Retryable, TimestampType, config

_TIMESTAMP_TYPES = {
    TimestampType.NOT_AVAILABLE: None,
    TimestampType.CREATE_TIME: "create",
    TimestampType.LOG_APPEND_TIME: "log_append",
}


def _text(record: Record, what: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise record.error(f"{what} is not UTF-8") from None


class Echo(ingesta.Handler):
    """Echoes each record to ``output_topic`` as JSON; ``permanent:``,
    ``retryable:`` and ``log:`` values exercise errors and logging."""

    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}
        """Per retryable id, how many times it has failed on this instance."""

    def on_record(self, record: Record) -> None:
        """Handles one record per the conformance spec."""
        output_topic = config.require("output_topic")
        greeting = config.get_or("greeting", "hello")
        value = record.value_str()
        if value.startswith("permanent:"):
            raise Permanent(value[len("permanent:"):])
        if value.startswith("retryable:"):
            ident, sep, count = value[len("retryable:"):].rpartition(":")
            if sep and count.isdigit():
                n = int(count)
                seen = self.attempts.get(ident, 0)
                if seen < n:
                    self.attempts[ident] = seen + 1
                    raise Retryable(f"retry {ident} ({seen + 1} of {n})")
        elif value.startswith("log:"):
            ingesta.info(value[len("log:"):])
        self.echo(record, output_topic, greeting, value)

    @staticmethod
    def echo(record: Record, topic: str, greeting: str, value: str) -> None:
        """Emits the record's echo to ``topic``."""
        key = record.key
        headers = [
            [name, None if v is None else _text(record, f"header {name}", v)]
            for name, v in record.headers
        ]
        body = {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "timestamp": record.timestamp,
            "timestamp_type": _TIMESTAMP_TYPES[record.timestamp_type],
            "key": None if key is None else record.key_str(),
            "value": value,
            "headers": headers,
            "greeting": greeting,
        }
        ingesta.emit_json(
            topic, key, body, headers=[*record.headers, ("echo-greeting", greeting)]
        )
