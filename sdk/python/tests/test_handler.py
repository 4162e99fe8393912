"""Handler dispatch: record order, error index, discard on failure, the
exported entry point (with stand-in bindings), and exceptions."""

import json
import sys
import types
import unittest
from dataclasses import dataclass
from enum import Enum
from typing import Any

import ingesta
from ingesta import Error, ErrorClass, Permanent, Record, Retryable, emit, testing
from ingesta.testing import TestBatch


class Echo(ingesta.Handler):
    """Echoes values, counts records across calls, and fails on "boom"."""

    def __init__(self) -> None:
        self.seen = 0

    def on_record(self, record: Record) -> None:
        self.seen += 1
        value = record.value_str()
        if value == "boom":
            raise Retryable("exploded")
        if value == "json":
            json.loads("{nope")
        if value == "bug":
            raise ZeroDivisionError("bug")
        emit("echo", record.key, value)


class HandlerTest(unittest.TestCase):
    def setUp(self) -> None:
        testing.reset()

    def test_default_on_batch_visits_records_in_order(self) -> None:
        out = testing.run(Echo(), TestBatch("in", 0).record("a", "1").record("b", "2"))
        self.assertEqual([e.value_str() for e in out], ["1", "2"])

    def test_record_error_blames_its_index_and_publishes_nothing(self) -> None:
        echo = Echo()
        batch = TestBatch("in", 0).record("a", "1").record("b", "boom").record("c", "3")
        with self.assertRaises(Retryable) as ctx:
            testing.run(echo, batch)
        self.assertEqual(ctx.exception.error_class, ErrorClass.RETRYABLE)
        self.assertEqual(ctx.exception.record_index, 1)
        self.assertEqual(echo.seen, 2, "stops at the first failure")
        out = testing.run(echo, TestBatch("in", 0).record("d", "4"))
        self.assertEqual(len(out), 1, "the next call does not see the failed call's output")

    def test_json_decode_errors_are_permanent_with_the_index(self) -> None:
        with self.assertRaises(Permanent) as ctx:
            testing.run(Echo(), TestBatch("in", 0).record(None, "1").record(None, "json"))
        self.assertEqual(ctx.exception.record_index, 1)
        self.assertTrue(ctx.exception.message.startswith("invalid JSON: "), ctx.exception.message)

    def test_other_exceptions_propagate_and_publish_nothing(self) -> None:
        with self.assertRaises(ZeroDivisionError):
            testing.run(Echo(), TestBatch("in", 0).record(None, "1").record(None, "bug"))
        self.assertEqual(testing.run(Echo(), TestBatch("in", 0)), [])

    def test_default_on_record_accepts_everything(self) -> None:
        self.assertEqual(testing.run(ingesta.Handler(), TestBatch("in", 0).record(None, None)), [])

    def test_on_batch_override_sees_the_batch(self) -> None:
        class Count(ingesta.Handler):
            def on_batch(self, batch: ingesta.Batch) -> None:
                emit("n", None, str(len(batch)))

        out = testing.run(Count(), TestBatch("in", 0).record(None, "a").record(None, "b"))
        self.assertEqual([e.value for e in out], [b"2"])


# Stand-ins for the modules componentize-py generates at build time, so the
# export glue runs natively.
class _Level(Enum):
    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4


class _ErrorClass(Enum):
    RETRYABLE = 0
    PERMANENT = 1


@dataclass
class _HandlerError:
    class_: _ErrorClass
    message: str
    record_index: int | None


@dataclass
class _Outbox:
    topics: list
    data: bytes
    records: bytes
    headers: bytes


@dataclass(frozen=True)
class _Err(Exception):
    value: Any


@dataclass
class _TopicNotAllowed:
    value: str


class FakeBindings:
    def __init__(self) -> None:
        self.emitted: list[_Outbox] = []
        self.logs: list[tuple[_Level, str]] = []
        self.config = [("output_topic", "out")]
        self.deny: str | None = None

    def install(self) -> None:
        def emit_fn(outbox: _Outbox) -> None:
            if self.deny in outbox.topics:
                raise _Err(_TopicNotAllowed(self.deny))  # type: ignore[arg-type]
            self.emitted.append(outbox)

        mods = {
            "componentize_py_types": types.SimpleNamespace(Err=_Err),
            "wit_world": types.SimpleNamespace(),
            "wit_world.exports": types.SimpleNamespace(Handler=object, Source=object),
            "wit_world.exports.source": types.SimpleNamespace(
                Response=lambda status, headers, body: (status, headers, body)
            ),
            "wit_world.imports": types.SimpleNamespace(),
            "wit_world.imports.types": types.SimpleNamespace(
                Outbox=_Outbox, HandlerError=_HandlerError, ErrorClass=_ErrorClass
            ),
            "wit_world.imports.emit": types.SimpleNamespace(
                emit=emit_fn,
                EmitError_TopicNotAllowed=_TopicNotAllowed,
                EmitError_LimitExceeded=type("L", (), {}),
            ),
            "wit_world.imports.log": types.SimpleNamespace(
                Level=_Level, log=lambda level, msg: self.logs.append((level, msg))
            ),
            "wit_world.imports.config": types.SimpleNamespace(entries=lambda: list(self.config)),
        }
        for name, module in mods.items():
            sys.modules[name] = module  # type: ignore[assignment]
        wit_world = mods["wit_world"]
        wit_world.exports = mods["wit_world.exports"]  # type: ignore[attr-defined]
        wit_world.imports = mods["wit_world.imports"]  # type: ignore[attr-defined]
        wit_world.exports.source = mods["wit_world.exports.source"]  # type: ignore[attr-defined]
        for leaf in ("types", "emit", "log", "config"):
            setattr(wit_world.imports, leaf, mods[f"wit_world.imports.{leaf}"])  # type: ignore[attr-defined]

    @staticmethod
    def uninstall() -> None:
        for name in list(sys.modules):
            if name == "componentize_py_types" or name.startswith("wit_world"):
                del sys.modules[name]
        testing.reset()


class Counted(Echo):
    created = 0

    def __init__(self) -> None:
        super().__init__()
        Counted.created += 1
        ingesta.info("created with %s", ingesta.config.get("output_topic"))


class ExportTest(unittest.TestCase):
    def setUp(self) -> None:
        self.fake = FakeBindings()
        self.fake.install()
        self.addCleanup(FakeBindings.uninstall)

    def test_exported_entry_point_keeps_one_handler_and_maps_errors(self) -> None:
        from ingesta._component import export_consumer

        Counted.created = 0
        Export = export_consumer(Counted)
        self.assertEqual(Counted.created, 0, "not created at import (build) time")
        ok = TestBatch("in", 0).record("a", "1").raw()
        Export().handle(ok)
        Export().handle(ok)
        self.assertEqual(Counted.created, 1, "created once, on the first call")
        self.assertEqual(len(self.fake.emitted), 2, "one host emit per call")
        self.assertEqual(self.fake.logs, [(_Level.INFO, "created with out")])

        bad = TestBatch("in", 0).record("a", "1").record("a", b"\xff").raw()
        with self.assertRaises(_Err) as ctx:
            Export().handle(bad)
        err = ctx.exception.value
        self.assertEqual(err.class_, _ErrorClass.PERMANENT)
        self.assertEqual(err.record_index, 1)
        self.assertTrue(err.message.startswith("value is not UTF-8"), err.message)
        self.assertEqual(len(self.fake.emitted), 2, "the failed call published nothing")

        with self.assertRaises(ZeroDivisionError):
            Export().handle(TestBatch("in", 0).record(None, "bug").raw())

    def test_refused_emit_is_a_permanent_error(self) -> None:
        from ingesta._component import export_consumer

        self.fake.deny = "echo"
        with self.assertRaises(_Err) as ctx:
            export_consumer(Echo)().handle(TestBatch("in", 0).record(None, "1").raw())
        self.assertEqual(
            ctx.exception.value.message,
            "emit refused: topic echo is not granted to this deployment",
        )

    def test_producer_export(self) -> None:
        from ingesta._component import export_producer

        class P(ingesta.Producer):
            def on_request(self, request: ingesta.Request) -> ingesta.Response:
                emit("t", request.header("x-key"), request.body)
                return ingesta.Response.accepted().with_header("x", "1")

        Export = export_producer(P)
        req = types.SimpleNamespace(method="POST", path="/", query="", headers=[("x-key", b"k")],
                                    body=b"hi")
        self.assertEqual(Export().handle_request(req), (202, [("x", "1")], b""))
        self.assertEqual(len(self.fake.emitted), 1)
        with self.assertRaises(_Err) as ctx:
            Export().handle_tick(types.SimpleNamespace(seq=0, scheduled_ms=0, interval_ms=1))
        self.assertIn("does not handle ticks", ctx.exception.value.message)

    def test_host_calls_before_the_first_call_raise(self) -> None:
        import importlib

        import ingesta._component as component

        # The entry module imports ingesta._component before the user's
        # module: with the bindings present, that installs the pending host.
        testing.reset()
        importlib.reload(component)
        self.assertIsInstance(ingesta._host.current(), ingesta._host.PendingHost)
        for what, call in [
            ("config", lambda: ingesta.config.get("output_topic")),
            ("emit", lambda: emit("t", None, "v")),
            ("emit", lambda: ingesta.Message.to("t").value("v").emit()),
            ("logging", lambda: ingesta.info("loading")),
        ]:
            with self.assertRaises(Permanent) as ctx:
                call()
            self.assertTrue(
                ctx.exception.message.startswith(f"{what} is only available during a call: "),
                ctx.exception.message,
            )
            self.assertIn("__init__, which runs on the first call", ctx.exception.message)

        Counted.created = 0
        Export = component.export_consumer(Counted)
        with self.assertRaises(Permanent):
            ingesta.config.get("output_topic")
        Export().handle(TestBatch("in", 0).record("a", "1").raw())
        self.assertEqual(self.fake.logs, [(_Level.INFO, "created with out")],
                         "config read at build time did not stick")
        self.assertEqual(len(self.fake.emitted), 1)

    def test_first_call_drops_config_cache_and_output_from_before(self) -> None:
        from ingesta._component import export_consumer

        testing.set_config({"output_topic": "stale"})
        self.assertEqual(ingesta.config.get("output_topic"), "stale")
        emit("stale", None, "buffered outside a call")
        Export = export_consumer(Counted)
        Export().handle(TestBatch("in", 0).record("a", "1").raw())
        self.assertEqual(self.fake.logs, [(_Level.INFO, "created with out")])
        self.assertEqual([o.topics for o in self.fake.emitted], [["echo"]])

    def test_init_errors_fail_the_call_and_creation_is_retried(self) -> None:
        from ingesta._component import export_consumer, export_producer

        class NeedsConfig(Echo):
            created = 0

            def __init__(self) -> None:
                super().__init__()
                NeedsConfig.created += 1
                emit("echo", None, "from __init__")
                self.topic = ingesta.config.require(
                    "missing" if NeedsConfig.created == 1 else "output_topic"
                )

        Export = export_consumer(NeedsConfig)
        batch = TestBatch("in", 0).record("a", "1").raw()
        with self.assertRaises(_Err) as ctx:
            Export().handle(batch)
        err = ctx.exception.value
        self.assertEqual(err.class_, _ErrorClass.PERMANENT)
        self.assertEqual(err.message, "config key missing is not set")
        self.assertIsNone(err.record_index)
        self.assertEqual(self.fake.emitted, [], "the failed call published nothing")
        Export().handle(batch)
        self.assertEqual(NeedsConfig.created, 2, "created again on the next call")
        self.assertEqual(len(self.fake.emitted), 1)
        values = testing.decode(self.fake.emitted[0])  # type: ignore[arg-type]
        self.assertEqual([e.value for e in values], [b"from __init__", b"1"])

        class BadJson(ingesta.Producer):
            def __init__(self) -> None:
                emit("t", None, "dropped")
                json.loads("{nope")

            def on_tick(self, tick: ingesta.Tick) -> None:
                emit("t", None, "tick")

        ExportP = export_producer(BadJson)
        tick = types.SimpleNamespace(seq=0, scheduled_ms=0, interval_ms=1)
        with self.assertRaises(_Err) as ctx:
            ExportP().handle_tick(tick)
        self.assertEqual(ctx.exception.value.class_, _ErrorClass.PERMANENT)
        self.assertTrue(ctx.exception.value.message.startswith("invalid JSON: "))
        self.assertEqual(len(self.fake.emitted), 1, "nothing of the producer was published")

    def test_class_without_handler_methods_is_refused_at_build_time(self) -> None:
        from ingesta._component import export_consumer, export_producer

        class Typo(ingesta.Handler):
            def on_recrod(self, record: Record) -> None:
                emit("t", None, record.value)

        with self.assertRaises(TypeError) as ctx:
            export_consumer(Typo)
        self.assertIn("Typo overrides neither on_record nor on_batch", str(ctx.exception))

        class Quiet(ingesta.Producer):
            def on_requset(self, request: ingesta.Request) -> ingesta.Response:
                return ingesta.Response.ok()

        with self.assertRaises(TypeError) as ctx:
            export_producer(Quiet)
        self.assertIn("Quiet overrides neither on_request nor on_tick", str(ctx.exception))

        class TickOnly(ingesta.Producer):
            def on_tick(self, tick: ingesta.Tick) -> None:
                pass

        class BatchOnly(ingesta.Handler):
            def on_batch(self, batch: ingesta.Batch) -> None:
                pass

        export_producer(TickOnly)
        export_consumer(BatchOnly)

    def test_wrong_class_is_refused_at_build_time(self) -> None:
        from ingesta._component import export_consumer, export_producer

        with self.assertRaises(TypeError):
            export_consumer(ingesta.Producer)  # type: ignore[arg-type]
        with self.assertRaises(TypeError):
            export_producer(Echo)  # type: ignore[arg-type]


class ErrorTest(unittest.TestCase):
    def test_constructors_set_class_and_message(self) -> None:
        e = Error.retryable("db down")
        self.assertIsInstance(e, Retryable)
        self.assertEqual(e.error_class, ErrorClass.RETRYABLE)
        self.assertTrue(e.is_retryable)
        self.assertEqual(e.message, "db down")
        self.assertIsNone(e.record_index)
        self.assertEqual(Error.permanent("x").error_class, ErrorClass.PERMANENT)
        self.assertIsInstance(Error.new(ErrorClass.PERMANENT, "x"), Permanent)
        with self.assertRaises(TypeError):
            Error("abstract")

    def test_str_names_class_and_record(self) -> None:
        self.assertEqual(str(Retryable("db down")), "retryable: db down")
        self.assertEqual(str(Permanent("bad price").at_record(7)), "permanent: bad price (record 7)")
        self.assertEqual(Permanent("x", record_index=3).record_index, 3)

    def test_huge_record_index_is_dropped_not_truncated(self) -> None:
        self.assertIsNone(Permanent("x").at_record(2**32).record_index)
        self.assertIsNone(Permanent("x").at_record(-1).record_index)


if __name__ == "__main__":
    unittest.main()
