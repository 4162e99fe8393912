"""Batch, Record and Headers views over hand-built and TestBatch layouts."""

import unittest

from ingesta import Batch, Permanent, TimestampType
from ingesta._abi import HeaderEntry, RecordEntry, Span, TimestampKind
from ingesta.testing import TestBatch, TestRecord, WireBatch


def sample() -> TestBatch:
    return (
        TestBatch("user-activity", 3)
        .at_offset(100)
        .push(
            TestRecord("k1", '{"n":1}')
            .header("trace-id", "abc")
            .header("empty", None)
            .header("trace-id", "def")
            .timestamp(1_732_460_000_000, TimestampType.CREATE_TIME)
        )
        .record(None, None)
        .push(TestRecord(b"\xff\xfe", "x").timestamp(42, TimestampType.LOG_APPEND_TIME))
    )


class BatchTest(unittest.TestCase):
    def test_batch_exposes_topic_partition_and_records(self) -> None:
        batch = sample().as_batch()
        self.assertEqual(batch.topic, "user-activity")
        self.assertEqual(batch.partition, 3)
        self.assertEqual(len(batch), 3)
        self.assertFalse(batch.is_empty())
        self.assertEqual(batch.first_offset, 100)
        self.assertEqual(batch.last_offset, 102)
        self.assertEqual([r.offset for r in batch], [100, 101, 102])
        self.assertEqual([r.index for r in reversed(batch)], [2, 1, 0])
        self.assertEqual([r.offset for r in batch.records()], [100, 101, 102])
        self.assertEqual(batch[1].offset, 101)
        self.assertEqual(batch[-1].offset, 102)
        self.assertEqual([r.index for r in batch[1:]], [1, 2])
        self.assertEqual(batch.get(1).offset, 101)  # type: ignore[union-attr]
        self.assertIsNone(batch.get(3))
        self.assertIsNone(batch.get(-1))
        with self.assertRaises(IndexError):
            batch[3]

    def test_empty_batch(self) -> None:
        batch = TestBatch("t", 0).as_batch()
        self.assertEqual(len(batch), 0)
        self.assertTrue(batch.is_empty())
        self.assertIsNone(batch.first_offset)
        self.assertIsNone(batch.last_offset)

    def test_record_resolves_key_value_spans(self) -> None:
        r = sample().as_batch()[0]
        self.assertEqual((r.topic, r.partition), ("user-activity", 3))
        self.assertEqual(r.key, b"k1")
        self.assertEqual(r.key_str(), "k1")
        self.assertEqual(r.value_str(), '{"n":1}')
        self.assertEqual(r.text(), '{"n":1}')
        self.assertEqual(r.json(), {"n": 1})

    def test_null_key_and_value_are_none(self) -> None:
        r = sample().as_batch()[1]
        self.assertIsNone(r.key)
        self.assertIsNone(r.value)
        self.assertEqual(len(r.headers), 0)
        with self.assertRaises(Permanent) as ctx:
            r.value_str()
        self.assertEqual(
            ctx.exception.message, "value is null (topic user-activity, partition 3, offset 101)"
        )
        self.assertEqual(ctx.exception.record_index, 1)
        with self.assertRaises(Permanent) as ctx:
            r.key_str()
        self.assertEqual(
            ctx.exception.message, "key is null (topic user-activity, partition 3, offset 101)"
        )

    def test_non_utf8_text_is_a_permanent_error(self) -> None:
        r = sample().as_batch()[2]
        self.assertEqual(r.key, b"\xff\xfe")
        with self.assertRaises(Permanent) as ctx:
            r.key_str()
        self.assertEqual(ctx.exception.record_index, 2)
        self.assertEqual(
            ctx.exception.message,
            "key is not UTF-8: invalid utf-8 sequence of 1 bytes from index 0 "
            "(topic user-activity, partition 3, offset 102)",
        )

    def test_timestamps_follow_their_type(self) -> None:
        a, b, c = sample().as_batch()
        self.assertEqual((a.timestamp, a.timestamp_type), (1_732_460_000_000, TimestampType.CREATE_TIME))
        self.assertEqual((b.timestamp, b.timestamp_type), (None, TimestampType.NOT_AVAILABLE))
        self.assertEqual((c.timestamp, c.timestamp_type), (42, TimestampType.LOG_APPEND_TIME))

    def test_headers_keep_order_nulls_and_duplicates(self) -> None:
        r = sample().as_batch()[0]
        self.assertEqual(
            list(r.headers), [("trace-id", b"abc"), ("empty", None), ("trace-id", b"def")]
        )
        self.assertEqual(r.header("trace-id"), b"def", "last one wins")
        self.assertEqual(r.headers.get_all("trace-id"), [b"abc", b"def"])
        self.assertIsNone(r.header("empty"))
        self.assertIsNone(r.header("missing"))
        self.assertEqual(r.headers[-1], ("trace-id", b"def"))
        self.assertEqual(len(r.headers), 3)

    def test_bad_json_names_the_record(self) -> None:
        r = TestBatch("t", 7).at_offset(9).record(None, "{oops").as_batch()[0]
        with self.assertRaises(Permanent) as ctx:
            r.json()
        self.assertEqual(ctx.exception.record_index, 0)
        self.assertTrue(ctx.exception.message.startswith("value is not valid JSON: "))
        self.assertIn("at line 1 column 2", ctx.exception.message)
        self.assertTrue(ctx.exception.message.endswith("(topic t, partition 7, offset 9)"))
        r = TestBatch("t", 7).record(None, None).as_batch()[0]
        with self.assertRaises(Permanent) as ctx:
            r.json()
        self.assertEqual(ctx.exception.message, "value is null (topic t, partition 7, offset 0)")

    def test_record_error_names_the_record(self) -> None:
        r = sample().as_batch()[1]
        err = r.error("bad price")
        self.assertIsInstance(err, Permanent)
        self.assertEqual(err.message, "bad price (topic user-activity, partition 3, offset 101)")
        self.assertEqual(err.record_index, 1)

    def test_spans_into_a_shared_buffer_resolve_independently(self) -> None:
        # Hand-built layout: two records sharing one buffer, a header whose
        # bytes sit before the keys, and a zero-length (empty, not null) value.
        records, headers = bytearray(), bytearray()
        RecordEntry(5, TimestampKind.NOT_AVAILABLE, 0, Span(6, 4), Span(14, 0), 0, 1).encode(records)
        RecordEntry(6, TimestampKind.NOT_AVAILABLE, 0, Span(10, 4), None, 1, 0).encode(records)
        HeaderEntry(Span(0, 3), Span(3, 3)).encode(headers)
        batch = Batch(WireBatch("t", 0, b"hdrvalkeyAkeyB", bytes(records), bytes(headers)))
        a, b = batch
        self.assertEqual(a.key_str(), "keyA")
        self.assertEqual(a.value, b"")
        self.assertEqual(list(a.headers), [("hdr", b"val")])
        self.assertEqual(b.key_str(), "keyB")
        self.assertIsNone(b.value)
        self.assertEqual(list(b.headers), [])


if __name__ == "__main__":
    unittest.main()
