"""`TestHost`: an in-memory host, so pytest runs an operator on plain CPython,
without wasm or a running Aileron, through the same params decoding and
outcome mapping as a deployed component."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Union

from ._context import RETURN_VALUE_KEY, Connection, Context, TaskInfo
from ._host import Host, Refused
from ._http import HttpError, Request, Response, refused, split_url
from ._json import encode
from ._operator import Operator
from ._outcome import Branch, Failed, Fatal, Reschedule, Skip, SkipDownstream
from ._run import Returned, run_try

#: A test server: a function answering each request (raise `HttpError` for a
#: request that gets no answer), or routes keyed `"GET https://host/path"` or
#: just by URL, whose values are responses or such functions.
Handler = Union[
    Callable[[Request], Response],
    Mapping[str, Union[Response, Callable[[Request], Response]]],
]


@dataclass
class RunResult:
    """How one try run by `TestHost.run` ended, and what it left behind."""

    #: `success`, `skip`, `branch`, `reschedule`, `skip_downstream`, `failed` or `fatal`.
    kind: str
    #: The return value of a successful try, as a downstream task would pull it.
    value: Any = None
    #: The `Skip`, `Branch`, `Reschedule` or `SkipDownstream` returned, if any.
    outcome: Skip | Branch | Reschedule | SkipDownstream | None = None
    #: Why a failed or fatal try failed.
    error: str | None = None
    #: The lines this try logged: (level, message).
    logs: list[tuple[str, str]] = field(default_factory=list)
    #: The XComs this try stored, by key, `return_value` included.
    xcoms: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the try did not fail."""
        return self.kind not in ("failed", "fatal")

    @property
    def log_text(self) -> str:
        """The messages this try logged, one per line."""
        return "\n".join(message for _, message in self.logs)


class TestHost:
    """An in-memory stand-in for the Aileron host.

    Seed it with variables, connections, upstream XComs and HTTP handlers;
    `run` an operator; then inspect the result, the log lines and the XComs.

    ```python
    host = TestHost(variables={"greeting": "Hi"}, xcoms={"extract": [1, 2]})
    result = host.run(greet, {"who": "Ada"})
    assert result.value == "Hi, Ada"
    ```

    - `connections`: `{conn_id: Connection(...)}` or a JSON object as the API
      takes it. As for a connection made through the API, it is host-held
      unless marked `"exposed": true` (or given as `Connection(...)` with
      `host_held=False`): the operator gets it without its password.
    - `xcoms`: `{task_id: value}` for return values, `{(task_id, key): value}`
      for other keys.
    - `http`: answers `ctx.http`, but only for the hosts in `allow_hosts`,
      checked as the host does (`example.com` on any port, `*.example.com` for
      its subdomains, `host:8443` for that port only); any other is refused
      with the host's error and its warning in the log. Requests go nowhere:
      the host's check of the resolved address has no counterpart here.
    - `connection_http`: `{conn_id: handler}` answering
      `ctx.http_with_connection`; the handler sees the request as the operator
      sent it (the real host adds the credential).
    """

    # Its name starts with `Test`; this keeps pytest from collecting it.
    __test__ = False

    def __init__(
        self,
        *,
        variables: Mapping[str, str] | None = None,
        connections: Mapping[str, Connection | Mapping[str, Any]] | None = None,
        xcoms: Mapping[str | tuple[str, str], Any] | None = None,
        http: Handler | None = None,
        allow_hosts: Iterable[str] = (),
        connection_http: Mapping[str, Handler] | None = None,
    ):
        self.variables: dict[str, str] = dict(variables or {})
        self.connections: dict[str, Connection | Mapping[str, Any]] = dict(connections or {})
        self.http_handler = http
        self.allow_hosts: list[str] = list(allow_hosts)
        self.connection_http: dict[str, Handler] = dict(connection_http or {})
        #: Every line logged, by every try: (level, message).
        self.logs: list[tuple[str, str]] = []
        #: Every outbound request sent with `ctx.http`, refused ones included.
        self.requests: list[Request] = []
        #: Every request sent through a connection: (conn_id, request).
        self.connection_requests: list[tuple[str, Request]] = []
        # Keyed by (task id, key); the JSON text that crossed the seam.
        self._xcoms: dict[tuple[str, str], str] = {}
        for name, value in (xcoms or {}).items():
            task_id, key = name if isinstance(name, tuple) else (name, RETURN_VALUE_KEY)
            self._xcoms[(task_id, key)] = encode(value)

    def xcom(self, task_id: str, key: str = RETURN_VALUE_KEY) -> Any:
        """The XCom `key` of `task_id`, seeded or stored by a try; None if none."""
        text = self._xcoms.get((task_id, key))
        return None if text is None else json.loads(text)

    def context(self, task: TaskInfo | Mapping[str, Any] | None = None) -> Context:
        """A context for the try `task`, to call an operator function directly."""
        task = _task(task, "")
        return Context(task, _Handle(self, task.task_id))

    def run(
        self,
        op: Operator,
        params: Mapping[str, Any] | str | None = None,
        *,
        task: TaskInfo | Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Runs `op` as the host would: `params` (a dict, or the JSON text) is
        decoded into its params type, and what it returns or raises becomes the
        result. `task` is a `TaskInfo` or the fields to change in the default,
        whose `task_id` is the operator's name."""
        if not isinstance(op, Operator):
            raise TypeError("TestHost.run takes a function decorated with @operator")
        task = _task(task, op.name)
        # Params cross the boundary as JSON, as they do from the host.
        params_json = params if isinstance(params, str) else encode(dict(params or {}))
        first_log = len(self.logs)
        handle = _Handle(self, task.task_id)
        ending = run_try(op, Context(task, handle), params_json)
        if isinstance(ending, Returned) and ending.json is not None:
            handle.xcom_push(RETURN_VALUE_KEY, ending.json)
        result = _result(ending)
        result.logs = self.logs[first_log:]
        result.xcoms = {key: json.loads(text) for key, text in handle.pushed.items()}
        return result


def _task(task: TaskInfo | Mapping[str, Any] | None, task_id: str) -> TaskInfo:
    if isinstance(task, TaskInfo):
        return task
    return replace(TaskInfo(task_id=task_id), **dict(task or {}))


def _result(ending: Any) -> RunResult:
    if isinstance(ending, Returned):
        value = None if ending.json is None else json.loads(ending.json)
        return RunResult("success", value=value)
    if isinstance(ending, Fatal):
        return RunResult("fatal", error=ending.message)
    if isinstance(ending, Failed):
        return RunResult("failed", error=ending.message)
    kinds = {Skip: "skip", Branch: "branch", Reschedule: "reschedule", SkipDownstream: "skip_downstream"}
    return RunResult(kinds[type(ending)], outcome=ending)


class _Handle(Host):
    """One try's view of a `TestHost`: pushes land under the try's task id."""

    def __init__(self, host: TestHost, task_id: str):
        self.host = host
        self.task_id = task_id
        #: What this try stored, by key, as JSON text.
        self.pushed: dict[str, str] = {}

    def log(self, level: str, message: str) -> None:
        self.host.logs.append((level, message))

    def xcom_push(self, key: str, value: str) -> None:
        self.pushed[key] = value
        self.host._xcoms[(self.task_id, key)] = value

    def xcom_pull(self, task_id: str, key: str) -> str | None:
        return self.host._xcoms.get((task_id, key))

    def variable(self, key: str) -> str | None:
        return self.host.variables.get(key)

    def connection(self, conn_id: str) -> str:
        stored = self.host.connections.get(conn_id)
        if stored is None:
            raise Refused(f"connection `{conn_id}` is not defined")
        return json.dumps(_guest_view(stored))

    def http_with_connection(self, conn_id: str, request: Request) -> Response:
        self.host.connection_requests.append((conn_id, request))
        handler = self.host.connection_http.get(conn_id)
        if handler is None:
            raise Refused(f"connection `{conn_id}` is not defined")
        try:
            return _answer(handler, request)
        except HttpError as error:
            raise Refused(error.reason) from None

    def http(self, request: Request, timeout: float | None) -> Response:
        self.host.requests.append(request)
        parts = split_url(request.method, request.url)
        host = _normalize(parts.hostname or "")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if not host_allowed(self.host.allow_hosts, host, port):
            # The host's warning, word for word, then the error the guest sees.
            shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            if self.host.allow_hosts:
                granted = f"allow_hosts is [{', '.join(self.host.allow_hosts)}]"
            else:
                granted = "the task has no allow_hosts, so it may make no HTTP request"
            self.log(
                "warning",
                f"outbound HTTP to {shown} denied: not in the task's allow_hosts ({granted})",
            )
            raise refused(request.method, request.url, "HTTP-request-denied")
        if self.host.http_handler is None:
            raise refused(request.method, request.url, "connection-refused")
        return _answer(self.host.http_handler, request)


def _guest_view(stored: Connection | Mapping[str, Any]) -> dict[str, Any]:
    """What the host hands the guest: a host-held connection without its
    password and with `host_held: true`; the `exposed` flag stays with the host."""
    if isinstance(stored, Connection):
        fields = asdict(stored)
        exposed = not fields.pop("host_held")
    else:
        fields = dict(stored)
        exposed = fields.pop("exposed", False) is True
    if not exposed:
        fields["password"] = None
        fields["host_held"] = True
    return fields


def _answer(handler: Handler, request: Request) -> Response:
    if isinstance(handler, Mapping):
        route = handler.get(f"{request.method} {request.url}", handler.get(request.url))
        if route is None:
            return Response(404, [("content-type", "text/plain")], b"TestHost: no route for this request")
        handler = route if callable(route) else (lambda _request, answer=route: answer)
    response = handler(request)
    if not isinstance(response, Response):
        raise TypeError(f"a TestHost handler returns a Response, not {type(response).__name__}")
    return response


def _normalize(host: str) -> str:
    """Lower case, without IPv6 brackets or a trailing dot, as the host compares."""
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host.removesuffix(".").lower()


def host_allowed(allow_hosts: Iterable[str], host: str, port: int) -> bool:
    """Whether the `allow_hosts` patterns let a request reach `host` on `port`,
    with the host's rules; invalid patterns match nothing."""
    host = _normalize(host)
    for pattern in allow_hosts:
        parsed = _parse_pattern(pattern)
        if parsed is None:
            continue
        wildcard, pattern_host, pattern_port = parsed
        if pattern_port is not None and pattern_port != port:
            continue
        if wildcard:
            if host.endswith("." + pattern_host) and len(host) > len(pattern_host) + 1:
                return True
        elif host == pattern_host:
            return True
    return False


def _parse_pattern(text: str) -> tuple[bool, str, int | None] | None:
    wildcard = text.startswith("*.")
    rest = text[2:] if wildcard else text
    port: int | None = None
    if rest.startswith("["):
        host, bracket, after = rest[1:].partition("]")
        if not bracket:
            return None
        if after:
            if not after.startswith(":") or not after[1:].isdigit():
                return None
            port = int(after[1:])
    elif rest.count(":") == 1:
        host, _, port_text = rest.partition(":")
        if not port_text.isdigit():
            return None
        port = int(port_text)
    else:
        host = rest  # No port, or a bare IPv6 address.
    host = _normalize(host)
    if not host or any(c in host for c in "*/@") or any(c.isspace() for c in host):
        return None
    if port is not None and port > 65535:
        return None
    return wildcard, host, port
