"""The host services through `TestHost`: XCom, variables, connections, HTTP,
and what the decorator accepts."""

import json
from dataclasses import dataclass

import pytest

from aileron import (
    Connection,
    ConnectionUnavailable,
    Context,
    HttpError,
    Request,
    Response,
    TaskInfo,
    XComError,
    operator,
)
from aileron.testing import TestHost, host_allowed


@operator(name="extract", version="0.1.0")
def extract(ctx: Context) -> dict:
    ctx.xcom_push("rows", 3)
    return {"files": ["a.csv", "b.csv"]}


@operator(name="transform", version="0.1.0")
def transform(ctx: Context) -> dict:
    return {
        "files": ctx.xcom_pull("extract"),
        "rows": ctx.xcom_pull("extract", key="rows"),
        "missing": ctx.xcom_pull("nobody"),
    }


def test_xcoms_round_trip_between_tries():
    host = TestHost()
    first = host.run(extract)
    assert first.xcoms == {"rows": 3, "return_value": {"files": ["a.csv", "b.csv"]}}
    second = host.run(transform)
    assert second.value == {"files": {"files": ["a.csv", "b.csv"]}, "rows": 3, "missing": None}


def test_upstream_xcoms_can_be_seeded():
    host = TestHost(xcoms={"extract": ["x"], ("extract", "rows"): 9})
    assert host.run(transform).value == {"files": ["x"], "rows": 9, "missing": None}


def test_pushing_what_json_cannot_hold_raises_xcom_error():
    @operator(name="pushes_a_set", version="0.1.0")
    def pushes_a_set(ctx: Context) -> None:
        ctx.xcom_push("ids", {1, 2})

    result = TestHost().run(pushes_a_set)
    assert result.kind == "failed"
    assert result.error.startswith(
        "aileron.XComError: could not encode XCom `ids` as JSON: Object of type set is not JSON serializable"
    )
    with pytest.raises(XComError):
        TestHost().context().xcom_push("nan", float("nan"))


def test_task_info_reaches_the_operator():
    @operator(name="who", version="0.1.0")
    def who(ctx: Context) -> dict:
        return {"task": ctx.task.task_id, "try": ctx.task.try_number, "retry": ctx.task.is_retry}

    host = TestHost()
    assert host.run(who).value == {"task": "who", "try": 1, "retry": False}
    assert host.run(who, task={"task_id": "t", "try_number": 2}).value == {
        "task": "t",
        "try": 2,
        "retry": True,
    }
    assert host.run(who, task=TaskInfo(task_id="u")).value["task"] == "u"


def test_variables():
    ctx = TestHost(variables={"greeting": "Hi"}).context()
    assert (ctx.variable("greeting"), ctx.variable("other")) == ("Hi", None)


def test_connections_come_as_the_host_sends_them():
    host = TestHost(
        connections={
            "warehouse": {
                "conn_type": "postgres",
                "host": "db.internal",
                "port": 5432,
                "login": "etl",
                "password": "hunter2",
                "extra": '{"sslmode": "require"}',
                "exposed": True,
            },
            "crm": {
                "conn_type": "http",
                "host": "crm.example.com",
                "password": "token",
            },
            "held": Connection(conn_type="http", host="api.example.com", password="s3cret", host_held=True),
        }
    )
    ctx = host.context()
    warehouse = ctx.connection("warehouse")
    assert (warehouse.host, warehouse.port, warehouse.password) == ("db.internal", 5432, "hunter2")
    assert warehouse.extra == {"sslmode": "require"}
    assert not warehouse.host_held
    assert "hunter2" not in repr(warehouse)

    for conn_id in ("crm", "held"):
        held = ctx.connection(conn_id)
        assert (held.password, held.host_held) == (None, True)

    with pytest.raises(ConnectionUnavailable, match="connection `nope` is not available: connection `nope` is not defined"):
        ctx.connection("nope")


def test_a_connection_that_is_not_an_object_is_unavailable():
    ctx = TestHost(connections={"odd": {"conn_type": "http", "extra": "[1]"}}).context()
    with pytest.raises(ConnectionUnavailable, match="does not have the expected shape"):
        ctx.connection("odd")


@operator(name="fetch", version="0.1.0")
def fetch(ctx: Context, params: dict) -> dict:
    response = ctx.http(
        params.get("method", "GET"), params["url"], json=params.get("json"), timeout=5
    )
    return {"status": response.status, "body": response.json(), "type": response.header("Content-Type")}


def test_http_goes_to_the_test_handler_for_allowed_hosts():
    seen = []

    def api(request: Request) -> Response:
        seen.append(request)
        return Response.from_json({"path": request.url, "sent": request.json() if request.body else None})

    host = TestHost(http=api, allow_hosts=["api.example.com"])
    result = host.run(fetch, {"method": "post", "url": "https://api.example.com/v1/items?page=2", "json": {"a": 1}})
    assert result.value == {
        "status": 200,
        "body": {"path": "https://api.example.com/v1/items?page=2", "sent": {"a": 1}},
        "type": "application/json",
    }
    assert seen[0].method == "POST"
    assert seen[0].header("content-type") == "application/json"
    assert host.requests == seen


def test_http_routes_answer_by_method_and_url():
    host = TestHost(
        http={
            "GET http://api.example.com:8080/a": Response.from_json({"a": 1}),
            "http://api.example.com:8080/b": lambda request: Response.from_json({"b": request.method}, status=201),
        },
        allow_hosts=["api.example.com:8080"],
    )
    assert host.run(fetch, {"url": "http://api.example.com:8080/a"}).value["body"] == {"a": 1}
    b = host.run(fetch, {"url": "http://api.example.com:8080/b", "method": "DELETE"}).value
    assert (b["status"], b["body"]) == (201, {"b": "DELETE"})
    missing = host.run(fetch, {"url": "http://api.example.com:8080/c"})
    assert missing.kind == "failed"  # A 404 with a text body: `.json()` raises.


def test_http_to_a_host_not_in_allow_hosts_is_refused_as_the_host_refuses_it():
    host = TestHost(http=lambda request: Response(200), allow_hosts=["api.example.com", "*.example.org:8443"])
    result = host.run(fetch, {"url": "http://evil.example.net/steal"})
    assert result.kind == "failed"
    assert result.logs[0] == (
        "warning",
        "outbound HTTP to evil.example.net:80 denied: not in the task's allow_hosts"
        " (allow_hosts is [api.example.com, *.example.org:8443])",
    )
    assert result.error.startswith(
        "aileron.HttpError: GET http://evil.example.net/steal not sent: the host refused it:"
        " its host and port are not in the task's allow_hosts [HTTP-request-denied]"
    )
    nothing_allowed = TestHost(http=lambda request: Response(200)).run(fetch, {"url": "https://api.example.com/"})
    assert "the task has no allow_hosts, so it may make no HTTP request" in nothing_allowed.logs[0][1]


@pytest.mark.parametrize(
    ("host", "port", "allowed"),
    [
        ("api.example.com", 443, True),
        ("API.Example.com.", 8080, True),
        ("example.org", 8443, False),
        ("a.example.org", 8443, True),
        ("a.b.example.org", 8443, True),
        ("a.example.org", 443, False),
        ("::1", 8080, True),
        ("[::1]", 8081, False),
        ("10.0.0.1", 80, False),
    ],
)
def test_allow_hosts_patterns_match_as_the_host_matches_them(host, port, allowed):
    patterns = ["api.example.com", "*.example.org:8443", "[::1]:8080", "bad/pattern", "x:notaport"]
    assert host_allowed(patterns, host, port) is allowed


def test_http_refuses_urls_it_cannot_send():
    ctx = TestHost(allow_hosts=["example.com"]).context()
    with pytest.raises(HttpError, match="only http and https URLs"):
        ctx.http("GET", "ftp://example.com/file")
    with pytest.raises(TypeError, match="`body` or `json`"):
        ctx.http("POST", "https://example.com/", body=b"x", json={})
    with pytest.raises(ValueError, match="timeout"):
        ctx.http("GET", "https://example.com/", timeout=0)


@operator(name="crm_contacts", version="0.1.0")
def crm_contacts(ctx: Context) -> dict:
    conn = ctx.connection("crm")
    response = ctx.http_with_connection("crm", "GET", "/v1/contacts?limit=2", headers=[("x-trace", "1")])
    return {"host_held": conn.host_held, "password": conn.password, "contacts": response.json()}


def test_http_with_connection_reaches_the_connections_test_server():
    host = TestHost(
        connections={"crm": {"conn_type": "http", "host": "crm.example.com", "password": "token", "exposed": False}},
        connection_http={"crm": {"GET /v1/contacts?limit=2": Response.from_json(["ada", "bob"])}},
    )
    result = host.run(crm_contacts)
    assert result.value == {"host_held": True, "password": None, "contacts": ["ada", "bob"]}
    (conn_id, request), = host.connection_requests
    assert (conn_id, request.method, request.url, request.header("X-Trace")) == ("crm", "GET", "/v1/contacts?limit=2", "1")


def test_http_with_connection_says_why_a_request_was_not_done():
    def unreachable(request: Request) -> Response:
        raise HttpError("down", reason="connection refused")

    host = TestHost(
        connections={"crm": {"conn_type": "http"}},
        connection_http={"crm": unreachable},
    )
    ctx = host.context()
    with pytest.raises(HttpError, match="HTTP request with connection `crm` not done: connection refused"):
        ctx.http_with_connection("crm", "GET", "/")
    with pytest.raises(HttpError, match="connection `other` not done: connection `other` is not defined"):
        ctx.http_with_connection("other", "GET", "/")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"name": "Bad Name", "version": "0.1.0"}, "operator name 'Bad Name'"),
        ({"name": "1st", "version": "0.1.0"}, "operator name '1st'"),
        ({"name": "ok", "version": "1.0"}, "operator version '1.0'"),
        ({"name": "ok", "version": "01.0.0"}, "operator version '01.0.0'"),
    ],
)
def test_names_and_versions_follow_the_hosts_rules(kwargs, error):
    with pytest.raises(ValueError, match=error):
        operator(**kwargs)(lambda ctx: None)


def test_the_function_takes_a_context_and_optionally_params():
    with pytest.raises(TypeError, match=r"must take \(ctx\) or \(ctx, params\)"):

        @operator(name="three", version="0.1.0")
        def three(ctx, a, b):
            return None

    @operator(name="plain", version="1.0.0-rc.1+build.5", description="Said here")
    def plain(ctx, params):
        return params

    assert plain.description == "Said here"
    assert plain(None, {"x": 1}) == {"x": 1}
    with pytest.raises(TypeError, match="decorated with @operator"):
        TestHost().run(plain.fn)


def test_params_may_be_given_as_json_text():
    @dataclass
    class Named:
        name: str

    @operator(name="named", version="0.1.0")
    def named(ctx: Context, params: Named) -> str:
        return params.name

    assert TestHost().run(named, json.dumps({"name": "x"})).value == "x"
