"""py_greet under pytest, with XComs in memory."""

from aileron.testing import TestHost

from py_greet import py_greet


def test_greets_and_shares_the_name():
    host = TestHost()
    result = host.run(py_greet, {"name": "Ada", "times": 2})
    assert result.value == "Hello, Ada! Hello, Ada!"
    assert result.xcoms == {"name": "Ada", "return_value": "Hello, Ada! Hello, Ada!"}
    assert result.logs == [("info", "Hello, Ada! Hello, Ada!")]


def test_adds_what_the_upstream_task_returned():
    host = TestHost(xcoms={"hello": "hi from Rust"})
    result = host.run(py_greet, {"name": "Ada", "upstream": "hello", "template": "Hey {name}"})
    assert result.value == "Hey Ada (hello said: hi from Rust)"


def test_params_of_the_wrong_type_fail_without_retry():
    result = TestHost().run(py_greet, {"name": "Ada", "times": "2"})
    assert (result.kind, result.error) == ("fatal", "invalid params at `times`: expected integer, got string")


def test_a_template_naming_an_unknown_field_fails_with_a_traceback():
    result = TestHost().run(py_greet, {"name": "Ada", "template": "Hi {nme}"})
    assert result.kind == "failed"
    assert result.error.startswith("KeyError: 'nme' (at py_greet.py:")
    assert result.logs[0][1].startswith("Traceback (most recent call last):")
