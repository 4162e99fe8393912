"""Producers: requests, responses, ticks, refusals and what gets published."""

import unittest

import ingesta
from ingesta import Permanent, Request, Response, Retryable, Tick, emit, testing


class Echo(ingesta.Producer):
    def __init__(self) -> None:
        self.ticks = 0

    def on_request(self, request: Request) -> Response:
        body = request.body_str()
        if body == "bad":
            emit("echo", None, "never published")
            return Response.text(422, "bad body")
        if body == "later":
            emit("echo", None, "never published")
            raise Retryable("busy")
        if body == "json":
            return Response.json(200, request.json())
        emit("echo", request.query_param("key"), body)
        return Response.accepted()

    def on_tick(self, tick: Tick) -> None:
        self.ticks += 1
        emit("ticks", None, str(tick.seq))


class ProducerTest(unittest.TestCase):
    def setUp(self) -> None:
        testing.reset()

    def test_request_accessors(self) -> None:
        req = Request("POST", "/events?key=u1&x", "hello").with_header("X-Id", "7")
        self.assertEqual((req.method, req.path, req.query), ("POST", "/events", "key=u1&x"))
        self.assertEqual(req.query_param("x"), "")
        self.assertEqual(req.query_param("key"), "u1")
        self.assertIsNone(req.query_param("nope"))
        self.assertEqual(req.header("x-id"), b"7")
        self.assertEqual(req.header_str("X-ID"), "7")
        self.assertEqual(req.headers, [("x-id", b"7")])
        self.assertEqual(req.body, b"hello")
        self.assertIsNone(Request("GET", "/").with_header("b", b"\xff").header_str("b"))

    def test_request_emits_and_answers(self) -> None:
        resp, out = testing.run_request(Echo(), Request("POST", "/?key=u1", "hello"))
        self.assertEqual(resp.status, 202)
        self.assertEqual(resp, Response.accepted())
        self.assertEqual([(e.key_str(), e.value_str()) for e in out], [("u1", "hello")])

    def test_error_status_and_errors_publish_nothing(self) -> None:
        resp, out = testing.run_request(Echo(), Request("POST", "/", "bad"))
        self.assertEqual((resp.status, out), (422, []))
        self.assertEqual(resp.body, b"bad body")
        self.assertEqual(resp.headers, (("content-type", "text/plain; charset=utf-8"),))
        with self.assertRaises(Retryable):
            testing.run_request(Echo(), Request("POST", "/", "later"))
        with self.assertRaises(Permanent) as ctx:
            testing.run_request(Echo(), Request("POST", "/", b"\xff"))
        self.assertEqual(
            ctx.exception.message,
            "request body is not UTF-8: invalid utf-8 sequence of 1 bytes from index 0",
        )
        # Nothing of the failed calls leaks into the next one.
        _, out = testing.run_request(Echo(), Request("POST", "/", "ok"))
        self.assertEqual([e.value for e in out], [b"ok"])

    def test_json_bodies(self) -> None:
        with self.assertRaises(Permanent):
            testing.run_request(Echo(), Request("POST", "/", "json"))  # "json" is not JSON
        with self.assertRaises(Permanent) as ctx:
            Request("POST", "/", "{oops").json()
        self.assertTrue(ctx.exception.message.startswith("request body is not valid JSON: "))
        self.assertEqual(Request("POST", "/", '{"a":[1,2.5]}').json(), {"a": [1, 2.5]})

    def test_responses(self) -> None:
        r = Response.json(201, {"id": 1, "name": "é"})
        self.assertEqual((r.status, r.body), (201, '{"id":1,"name":"é"}'.encode()))
        self.assertEqual(r.headers, (("content-type", "application/json"),))
        r2 = Response.ok().with_header("x", "1").with_body("hi").with_status(204)
        self.assertEqual(r2, Response(204, (("x", "1"),), b"hi"))
        self.assertEqual(Response.new(418).status, 418)
        with self.assertRaises(Permanent) as ctx:
            Response.json(200, {1.5: "x"})
        self.assertEqual(ctx.exception.message, "cannot serialize the response: key must be a string")

    def test_ticks_keep_state_and_defaults_refuse(self) -> None:
        echo = Echo()
        for seq in range(3):
            out = testing.run_tick(echo, Tick(seq=seq, scheduled_ms=0, interval_ms=100))
            self.assertEqual(out[0].value_str(), str(seq))
        self.assertEqual(echo.ticks, 3)
        nothing = ingesta.Producer()
        with self.assertRaises(Permanent) as ctx:
            testing.run_request(nothing, Request("GET", "/"))
        self.assertEqual(
            ctx.exception.message,
            "this module does not accept HTTP requests (it has no on_request)",
        )
        with self.assertRaises(Permanent) as ctx:
            testing.run_tick(nothing)
        self.assertIn("does not handle ticks", ctx.exception.message)

    def test_on_request_must_return_a_response(self) -> None:
        class Forgot(ingesta.Producer):
            def on_request(self, request: Request) -> Response:
                emit("t", None, "x")
                return None  # type: ignore[return-value]

        with self.assertRaises(TypeError):
            testing.run_request(Forgot(), Request("POST", "/"))


class StatusAnswer(ingesta.Producer):
    """Emits ``size`` bytes (over the early-flush threshold if asked) and
    answers ``status``."""

    def __init__(self, status: int = 200, size: int = 1) -> None:
        self.status = status
        self.size = size

    def on_request(self, request: Request) -> Response:
        emit("big", "k", b"x" * self.size)
        return Response(self.status)


class RunRequestStatusTest(unittest.TestCase):
    def setUp(self) -> None:
        testing.reset()

    def test_refusal_returns_nothing_even_after_an_early_flush(self) -> None:
        from ingesta.emit import FLUSH_THRESHOLD

        req = Request("POST", "/")
        resp, out = testing.run_request(StatusAnswer(409, FLUSH_THRESHOLD + 1), req)
        self.assertEqual((resp.status, out), (409, []))
        _, out = testing.run_request(StatusAnswer(200, FLUSH_THRESHOLD + 1), req)
        self.assertEqual(len(out), 1)
        self.assertEqual(len(testing.run_request(StatusAnswer(399), req)[1]), 1)
        self.assertEqual(testing.run_request(StatusAnswer(599), req)[1], [])

    def test_status_outside_200_to_599_is_an_error(self) -> None:
        for status in (0, 101, 199, 600, 999):
            with self.assertRaises(Permanent) as ctx:
                testing.run_request(StatusAnswer(status), Request("POST", "/"))
            self.assertEqual(
                ctx.exception.message,
                f"the module answered with status {status}, which is not a final HTTP "
                "status (200-599); nothing was published",
            )


if __name__ == "__main__":
    unittest.main()
