"""The outbox: layout, buffering until the call ends, discard on failure,
early flushing and refusals."""

import unittest

from ingesta import Message, Permanent, emit, emit_json, forward, testing
from ingesta import _host
from ingesta._abi import HeaderEntry, OutgoingEntry
from ingesta.emit import FLUSH_THRESHOLD, OUTBOX, end_call
from ingesta.testing import Emitted, TestBatch, TestRecord, decode


def drain() -> _host.WireOutbox:
    """Takes what the outbox holds, leaving it empty."""
    wire = OUTBOX.wire()
    OUTBOX.discard()
    return wire


def native() -> _host.NativeHost:
    host = _host.current()
    assert isinstance(host, _host.NativeHost)
    return host


class EmitTest(unittest.TestCase):
    def setUp(self) -> None:
        testing.reset()

    def test_payload_kinds(self) -> None:
        emit("t", "str", b"bytes")
        emit("t", bytearray(b"ba"), memoryview(b"mv"))
        emit("t", None, "")
        out = decode(drain())
        self.assertEqual([(e.key, e.value) for e in out],
                         [(b"str", b"bytes"), (b"ba", b"mv"), (None, b"")])
        with self.assertRaises(TypeError):
            emit("t", 1, "v")  # type: ignore[arg-type]
        self.assertEqual(decode(drain()), [], "a refused payload appends nothing")

    def test_headers_from_a_mapping_or_pairs(self) -> None:
        emit("t", "k", "v", headers={"id": "7", "raw": b"\x00", "null": None})
        emit("t", "k", "v", [("a", "1"), ["b", b"2"]])
        emit("t", "k", "v", (pair for pair in [("g", "3")]))
        emit_json("t", "k", {}, headers={"id": "8"})
        Message.to("t").header("x", "1").emit()
        out = decode(drain())
        self.assertEqual(out[0].headers, [("id", b"7"), ("raw", b"\x00"), ("null", None)])
        self.assertEqual(out[1].headers, [("a", b"1"), ("b", b"2")])
        self.assertEqual(out[2].headers, [("g", b"3")])
        self.assertEqual(out[3].headers, [("id", b"8")])
        self.assertEqual(out[4].headers, [("x", b"1")])
        not_pairs = "headers must be a mapping or a sequence of (name, value) pairs, not "
        for headers, problem in [
            ("id=7", not_pairs + "str"),
            (b"id", not_pairs + "bytes"),
            ({("a", "1")}, not_pairs + "set"),
            (7, not_pairs + "int"),
            (["id"], "each header must be a (name, value) pair, not str"),
            ([("a", "1", "2")], "each header must be a (name, value) pair, not a tuple of 3 items"),
            ([(1, "v")], "header name must be str, not int"),
            ({"n": 5}, "header n must be str, bytes, bytearray, memoryview or None, not int"),
        ]:
            with self.assertRaises(TypeError) as ctx:
                emit("t", "k", "v", headers)  # type: ignore[arg-type]
            self.assertEqual(str(ctx.exception), problem)
        self.assertEqual(decode(drain()), [], "a refused record appends nothing")

    def test_topics_are_deduplicated_in_first_use_order(self) -> None:
        emit("a", "k1", "v1")
        emit("b", None, "v2")
        emit("a", "k3", None)
        wire = drain()
        self.assertEqual(wire.topics, ["a", "b"])
        topics = [OutgoingEntry.read(wire.records, i).topic for i in range(3)]  # type: ignore[union-attr]
        self.assertEqual(topics, [0, 1, 0])
        self.assertEqual(
            decode(wire),
            [Emitted("a", b"k1", b"v1"), Emitted("b", None, b"v2"), Emitted("a", b"k3", None)],
        )

    def test_spans_point_into_one_buffer(self) -> None:
        emit("t", "key", "value")
        Message.to("t").value("v2").header("h", "hv").emit()
        wire = drain()
        self.assertEqual(wire.data, b"keyvaluev2hhv")
        r = OutgoingEntry.read(wire.records, 1)
        assert r is not None
        self.assertEqual((r.header_start, r.header_count), (0, 1))
        h = HeaderEntry.read(wire.headers, 0)
        assert h is not None and h.value is not None
        self.assertEqual((h.name.start, h.name.len), (10, 1))
        self.assertEqual((h.value.start, h.value.len), (11, 2))

    def test_message_builds_headers_in_order(self) -> None:
        Message.to("out").key("k").value("v").header("a", "1").header("nul", None).header(
            "a", b"2"
        ).emit()
        Message.to("out").emit()
        self.assertEqual(
            decode(drain()),
            [
                Emitted("out", b"k", b"v", [("a", b"1"), ("nul", None), ("a", b"2")]),
                Emitted("out", None, None, []),
            ],
        )

    def test_emit_takes_headers(self) -> None:
        emit("t", "k", "v", [("x", "1"), ("y", None)])
        self.assertEqual(decode(drain()), [Emitted("t", b"k", b"v", [("x", b"1"), ("y", None)])])

    def test_forward_copies_key_value_and_headers(self) -> None:
        batch = (
            TestBatch("in", 0)
            .push(TestRecord("k", bytes([0, 159, 146, 150])).header("x", "1").header("y", None))
            .record(None, None)
            .as_batch()
        )
        for record in batch:
            forward("out", record)
        Message.to("out2").value("v").headers_from(batch[0]).header("added", "z").emit()
        out = decode(drain())
        self.assertEqual(out[0], Emitted("out", b"k", bytes([0, 159, 146, 150]),
                                         [("x", b"1"), ("y", None)]))
        self.assertEqual(out[1], Emitted("out", None, None, []))
        self.assertEqual(
            out[2], Emitted("out2", None, b"v", [("x", b"1"), ("y", None), ("added", b"z")])
        )

    def test_emit_json_writes_json_and_rolls_back_on_error(self) -> None:
        emit_json("t", "1", {"id": 1, "name": "x"})
        with self.assertRaises(Permanent) as ctx:
            emit_json("t", "2", {b"bytes-key": 1})
        self.assertEqual(ctx.exception.message, "cannot serialize a record for t: key must be a string")
        with self.assertRaises(Permanent):
            emit_json("t", "3", {"x": object()})
        wire = drain()
        self.assertEqual(wire.data, b'1{"id":1,"name":"x"}', "no trace of the failed records")
        self.assertEqual(OutgoingEntry.count(wire.records), 1)

    def test_large_output_is_flushed_early(self) -> None:
        big = b"x" * (FLUSH_THRESHOLD // 2 + 1)
        emit("t", None, big)
        self.assertEqual(native().emitted, [], "below the threshold")
        emit("t", None, big)
        self.assertEqual(len(native().emitted), 1)
        self.assertEqual(OutgoingEntry.count(native().emitted[0].records), 2)
        self.assertEqual(OUTBOX.buffered_bytes(), 0)

    def test_refused_flush_fails_the_call_and_drops_later_records(self) -> None:
        testing.deny_topic("secret")
        emit("secret", None, bytes(FLUSH_THRESHOLD))
        emit("fine", None, "dropped")
        with self.assertRaises(Permanent) as ctx:
            OUTBOX.finish(_host.emit)
        self.assertEqual(
            ctx.exception.message, "emit refused: topic secret is not granted to this deployment"
        )
        self.assertEqual(native().emitted, [])
        # The next call starts clean.
        emit("fine", None, "kept")
        OUTBOX.finish(_host.emit)
        self.assertEqual(len(native().emitted), 1)

    def test_empty_outbox_does_not_call_the_host(self) -> None:
        calls = []
        OUTBOX.finish(calls.append)
        self.assertEqual(calls, [])

    def test_end_call_publishes_only_successes(self) -> None:
        def ok() -> int:
            emit("t", None, "yes")
            return 200

        def boom() -> None:
            emit("t", None, "no")
            raise KeyError("bug")

        self.assertEqual(end_call(ok, lambda s: s < 400), 200)
        self.assertEqual(len(native().emitted), 1)
        self.assertEqual(end_call(ok, lambda s: False), 200)
        self.assertEqual(len(native().emitted), 1, "a refused value publishes nothing")
        with self.assertRaises(KeyError):
            end_call(boom, lambda _: True)
        self.assertEqual(len(native().emitted), 1, "an exception publishes nothing")
        self.assertEqual(OUTBOX.buffered_bytes(), 0, "and leaves nothing behind")


if __name__ == "__main__":
    unittest.main()
