"""How a try ends: returned values and outcomes, raised Failed and Fatal, and
any other exception."""

import datetime
import enum
import logging
from dataclasses import dataclass

import pytest

from aileron import (
    Branch,
    Context,
    Failed,
    Fatal,
    HttpError,
    Reschedule,
    Skip,
    SkipDownstream,
    operator,
)
from aileron.testing import TestHost


@dataclass
class Choice:
    outcome: str


@operator(name="decide", version="0.1.0")
def decide(ctx: Context, params: Choice):
    return {
        "none": None,
        "skip": Skip("nothing new"),
        "branch": Branch(["load", "report"]),
        "branch_one": Branch("load"),
        "reschedule": Reschedule(datetime.timedelta(seconds=1.5)),
        "short_circuit": SkipDownstream(),
        "short_circuit_all": SkipDownstream(all=True),
    }[params.outcome]


@pytest.mark.parametrize(
    ("choice", "kind", "outcome"),
    [
        ("skip", "skip", Skip("nothing new")),
        ("branch", "branch", Branch(["load", "report"])),
        ("branch_one", "branch", Branch(["load"])),
        ("reschedule", "reschedule", Reschedule(2)),
        ("short_circuit", "skip_downstream", SkipDownstream(all=False)),
        ("short_circuit_all", "skip_downstream", SkipDownstream(all=True)),
    ],
)
def test_returned_outcomes_end_the_try_as_they_say(choice, kind, outcome):
    result = TestHost().run(decide, {"outcome": choice})
    assert (result.kind, result.outcome, result.value, result.error) == (kind, outcome, None, None)
    assert result.ok
    assert result.xcoms == {}


def test_none_is_success_without_a_value():
    result = TestHost().run(decide, {"outcome": "none"})
    assert (result.kind, result.value, result.xcoms) == ("success", None, {})


def test_reschedule_rounds_up_to_whole_seconds_and_refuses_negative_delays():
    assert Reschedule(0.2).seconds == 1
    assert Reschedule(30).seconds == 30
    with pytest.raises(ValueError):
        Reschedule(-1)
    with pytest.raises(TypeError):
        Branch(["a", 1])


class Color(enum.Enum):
    RED = "red"


@dataclass
class Row:
    id: int
    color: Color


def test_a_returned_value_becomes_the_return_value_xcom_as_json():
    @operator(name="rows", version="0.1.0")
    def rows(ctx: Context) -> list:
        return [Row(1, Color.RED), (2, "b")]

    host = TestHost()
    result = host.run(rows)
    expected = [{"id": 1, "color": "red"}, [2, "b"]]
    assert (result.kind, result.value) == ("success", expected)
    assert result.xcoms == {"return_value": expected}
    assert host.xcom("rows") == expected


def test_a_value_json_cannot_hold_fails_the_try():
    @operator(name="unstorable", version="0.1.0")
    def unstorable(ctx: Context) -> object:
        return {"when": datetime.date(2026, 1, 1)}

    result = TestHost().run(unstorable)
    assert result.kind == "failed"
    assert result.error == (
        "the return value cannot be stored as an XCom: Object of type date is not JSON serializable"
    )


def test_failed_is_retried_and_fatal_is_not():
    @dataclass
    class How:
        fatal: bool

    @operator(name="breaks", version="0.1.0")
    def breaks(ctx: Context, params: How) -> None:
        if params.fatal:
            raise Fatal("the table does not exist")
        raise Failed("the database is busy")

    host = TestHost()
    assert (host.run(breaks, {"fatal": False}).kind, host.run(breaks, {"fatal": False}).error) == (
        "failed",
        "the database is busy",
    )
    fatal = host.run(breaks, {"fatal": True})
    assert (fatal.kind, fatal.error, fatal.ok) == ("fatal", "the table does not exist", False)
    # Deliberate failures say why in their reason; they leave no traceback.
    assert host.logs == []


def parse_port(text: str) -> int:
    return int(text)


def test_any_other_exception_fails_with_its_type_message_and_traceback():
    @operator(name="crashes", version="0.1.0")
    def crashes(ctx: Context) -> int:
        ctx.log.info("parsing")
        return parse_port("http")

    result = TestHost().run(crashes)
    assert result.kind == "failed"
    line = parse_port.__code__.co_firstlineno + 1
    assert result.error == (
        f"ValueError: invalid literal for int() with base 10: 'http' (at test_outcomes.py:{line})"
    )
    assert result.logs[0] == ("info", "parsing")
    level, traceback_text = result.logs[1]
    assert level == "error"
    assert traceback_text.startswith("Traceback (most recent call last):")
    assert "in crashes" in traceback_text and "in parse_port" in traceback_text
    assert traceback_text.endswith("ValueError: invalid literal for int() with base 10: 'http'")
    # The SDK's own frame that called the operator is left out.
    assert "_run.py" not in traceback_text


def test_an_error_raised_inside_the_sdk_is_located_at_the_operators_call():
    @operator(name="offline", version="0.1.0")
    def offline(ctx: Context) -> None:
        ctx.http("GET", "https://api.example.com/")

    result = TestHost().run(offline)
    assert result.kind == "failed"
    assert result.error.startswith("aileron.HttpError: GET https://api.example.com/ not sent:")
    assert result.error.endswith(f"(at test_outcomes.py:{offline.fn.__code__.co_firstlineno + 2})")


def test_exception_types_outside_builtins_are_named_with_their_module():
    class Custom(Exception):
        pass

    @operator(name="custom", version="0.1.0")
    def custom(ctx: Context) -> None:
        raise Custom()

    result = TestHost().run(custom)
    assert result.error.startswith(
        "test_outcomes.test_exception_types_outside_builtins_are_named_with_their_module.<locals>.Custom (at"
    )


def test_sys_exit_fails_the_try_too():
    @operator(name="exits", version="0.1.0")
    def exits(ctx: Context) -> None:
        raise SystemExit(3)

    result = TestHost().run(exits)
    assert result.kind == "failed"
    assert result.error.startswith("SystemExit: 3 (at")


def test_returning_failed_or_fatal_is_the_same_as_raising_it():
    @operator(name="returns_error", version="0.1.0")
    def returns_error(ctx: Context):
        return Fatal("bad input")

    assert TestHost().run(returns_error).kind == "fatal"


def test_python_logging_reaches_the_try_log_and_the_level_is_restored():
    @operator(name="logs", version="0.1.0")
    def logs(ctx: Context) -> None:
        logging.getLogger("etl.extract").info("read %d rows", 3)
        logging.warning("careful")
        logging.getLogger("etl").debug("hidden at the default level")

    root = logging.getLogger()
    level = root.level
    result = TestHost().run(logs)
    assert result.logs == [("info", "etl.extract: read 3 rows"), ("warning", "careful")]
    assert root.level == level
    assert not any(type(h).__name__ == "_TryLogHandler" for h in root.handlers)


def test_http_errors_are_exceptions_operators_can_catch():
    @operator(name="tolerant", version="0.1.0")
    def tolerant(ctx: Context) -> str:
        try:
            ctx.http("GET", "https://api.example.com/")
        except HttpError as error:
            return error.code
        return "sent"

    assert TestHost().run(tolerant).value == "HTTP-request-denied"
