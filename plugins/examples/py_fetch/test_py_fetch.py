"""py_fetch under pytest, with the TestHost answering its HTTP request."""

from aileron import Response
from aileron.testing import TestHost

from py_fetch import py_fetch

ITEM = "https://api.example.com/items/7"


def host(answer: Response) -> TestHost:
    return TestHost(http={f"GET {ITEM}": answer}, allow_hosts=["api.example.com"])


def test_returns_the_status_and_the_field():
    result = host(Response.from_json({"data": {"name": "widget"}})).run(
        py_fetch, {"url": ITEM, "field": "data.name"}
    )
    assert result.value == {"status": 200, "value": "widget"}


def test_a_missing_field_is_fatal():
    result = host(Response.from_json({"data": {}})).run(py_fetch, {"url": ITEM, "field": "data.name"})
    assert (result.kind, result.error) == ("fatal", f"the answer of {ITEM} has no field `data.name`")


def test_a_server_error_is_retried():
    result = host(Response(503)).run(py_fetch, {"url": ITEM, "field": "data"})
    assert (result.kind, result.error) == ("failed", f"GET {ITEM} answered 503")


def test_a_host_outside_allow_hosts_is_refused():
    result = host(Response(200)).run(py_fetch, {"url": "https://other.example.com/", "field": "x"})
    assert result.kind == "failed"
    assert "[HTTP-request-denied]" in result.error
    assert result.logs[0][0] == "warning"
