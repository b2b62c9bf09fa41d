"""Inside a component only: the host reached through the bindings componentize-py
generates for `wit/world.wit` (the `context` imports and `wasi:http`), and the
`WitWorld` export that runs the operator.

componentize-py generates the `wit_world` package while it builds, from the WIT
this package carries (see `componentize-py.toml`); nothing here is imported on
a plain CPython.
"""

from __future__ import annotations

import json
import types

from componentize_py_types import Err, Ok
from wit_world.imports import aileron_operator_types as wit
from wit_world.imports import context as imports
from wit_world.imports import outgoing_handler
from wit_world.imports import wasi_http_types as http
from wit_world.imports.streams import StreamError_Closed

from ._context import Context, TaskInfo
from ._host import Host, Refused
from ._http import HttpError, Request, Response, refused, split_url
from ._operator import Operator
from ._outcome import Branch, Failed, Fatal, Reschedule, Skip, SkipDownstream
from ._run import Returned, route_logging, run_try

_LEVELS = {
    "debug": imports.Level.DEBUG,
    "info": imports.Level.INFO,
    "warning": imports.Level.WARN,
    "error": imports.Level.ERROR,
}

_METHODS = {
    "GET": http.Method_Get,
    "HEAD": http.Method_Head,
    "POST": http.Method_Post,
    "PUT": http.Method_Put,
    "DELETE": http.Method_Delete,
    "CONNECT": http.Method_Connect,
    "OPTIONS": http.Method_Options,
    "TRACE": http.Method_Trace,
    "PATCH": http.Method_Patch,
}

# `blocking-write-and-flush` takes at most 4096 bytes per call.
_WRITE_CHUNK = 4096
_READ_CHUNK = 64 * 1024


class WitHost(Host):
    """The host that runs the component, through the WIT imports."""

    def log(self, level: str, message: str) -> None:
        imports.log(_LEVELS[level], message)

    def xcom_push(self, key: str, value: str) -> None:
        try:
            imports.xcom_push(key, value)
        except Err as err:
            raise Refused(err.value) from None

    def xcom_pull(self, task_id: str, key: str) -> str | None:
        return imports.xcom_pull(task_id, key)

    def variable(self, key: str) -> str | None:
        return imports.variable(key)

    def connection(self, conn_id: str) -> str:
        try:
            return imports.connection(conn_id)
        except Err as err:
            raise Refused(err.value) from None

    def http_with_connection(self, conn_id: str, request: Request) -> Response:
        wit_request = imports.HttpRequest(request.method, request.url, request.headers, request.body)
        try:
            answer = imports.http_with_connection(conn_id, wit_request)
        except Err as err:
            raise Refused(err.value) from None
        return Response(answer.status, list(answer.headers), bytes(answer.body))

    def http(self, request: Request, timeout: float | None) -> Response:
        return _send(request, timeout)


def _send(request: Request, timeout: float | None) -> Response:
    """Sends `request` over `wasi:http/outgoing-handler` and reads the whole
    response, blocking on the host's pollables."""
    method, url = request.method, request.url
    parts = split_url(method, url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    headers = list(request.headers)
    if request.body and request.header("content-length") is None:
        # Without a length the body goes out chunked, which some servers (Python's
        # http.server, for one) cannot read; the length is known, so say it.
        headers.append(("content-length", str(len(request.body))))
    try:
        fields = http.Fields.from_list([(n, v.encode("latin-1")) for n, v in headers])
    except Err as err:
        raise HttpError(
            f"{method} {url} not sent: a header was refused ({_case_name(err.value)});"
            " connection, host, transfer-encoding and other framing headers are the host's",
            reason="header refused",
        ) from None
    except UnicodeEncodeError:
        raise HttpError(
            f"{method} {url} not sent: header values must be Latin-1 text",
            reason="header not Latin-1",
        ) from None
    outgoing = http.OutgoingRequest(fields)
    outgoing.set_method(_METHODS[method]() if method in _METHODS else http.Method_Other(method))
    outgoing.set_scheme(http.Scheme_Https() if parts.scheme == "https" else http.Scheme_Http())
    outgoing.set_authority(parts.netloc)
    outgoing.set_path_with_query(path)
    body = outgoing.body()

    options = None
    if timeout is not None:
        options = http.RequestOptions()
        nanos = int(timeout * 1e9)
        options.set_connect_timeout(nanos)
        options.set_first_byte_timeout(nanos)
        options.set_between_bytes_timeout(nanos)

    try:
        future = outgoing_handler.handle(outgoing, options)
    except Err as err:
        body.__exit__(None, None, None)
        raise _refusal(method, url, err.value) from None

    # The body is written after `handle`, so a large one streams to the server
    # instead of filling the host's buffer before anyone reads it.
    try:
        with body.write() as stream:
            for start in range(0, len(request.body), _WRITE_CHUNK):
                stream.blocking_write_and_flush(request.body[start : start + _WRITE_CHUNK])
    except Err:
        # The request broke off while its body was going out: dropping the body
        # unfinished fails it, and the response future below says why.
        body.__exit__(None, None, None)
    else:
        try:
            http.OutgoingBody.finish(body, None)
        except Err as err:
            raise _refusal(method, url, err.value) from None

    with future:
        answer = future.get()
        while answer is None:
            with future.subscribe() as ready:
                ready.block()
            answer = future.get()
    # `future.get` answers Ok(Ok(response)), Ok(Err(error-code)), or Err for a
    # future read twice, which this code never does.
    if isinstance(answer, Err) or isinstance(answer.value, Err):
        code = answer.value.value if isinstance(answer, Ok) else None
        raise _refusal(method, url, code)
    with answer.value.value as incoming:
        with incoming.headers() as received:
            pairs = [(n, v.decode("latin-1")) for n, v in received.entries()]
        status = incoming.status()
        data = _read_body(method, url, incoming.consume())
    return Response(status, pairs, data)


def _read_body(method: str, url: str, body: http.IncomingBody) -> bytes:
    chunks = []
    with body.stream() as stream:
        while True:
            try:
                chunks.append(stream.blocking_read(_READ_CHUNK))
            except Err as err:
                if isinstance(err.value, StreamError_Closed):
                    break
                detail = err.value.value.to_debug_string()
                raise HttpError(
                    f"{method} {url}: the response body broke off ({detail})",
                    reason=f"response body broke off: {detail}",
                ) from None
    http.IncomingBody.finish(body).__exit__(None, None, None)
    return b"".join(chunks)


def _refusal(method: str, url: str, code: object) -> HttpError:
    """The `HttpError` for a `wasi:http` error code (None when there is none)."""
    if code is None:
        return refused(method, url, "internal-error")
    detail = getattr(code, "value", None)
    if detail is not None and not isinstance(detail, (str, int)):
        detail = ", ".join(f"{k}={v}" for k, v in vars(detail).items() if v is not None) or None
    return refused(method, url, _case_name(code), None if detail is None else str(detail))


def _case_name(value: object) -> str:
    """The WIT name of a variant case: `ErrorCode_HttpRequestDenied` is
    `HTTP-request-denied`."""
    name = type(value).__name__.split("_", 1)[-1]
    words = []
    for char in name:
        if char.isupper() and words:
            words.append("-")
        words.append(char.lower())
    text = "".join(words)
    # WIT spells these acronyms in capitals.
    for acronym in ("http", "dns", "ip", "tls", "uri"):
        text = "-".join(acronym.upper() if w == acronym else w for w in text.split("-"))
    return text


def _task_info(info: wit.TaskInfo) -> TaskInfo:
    return TaskInfo(
        dag_id=info.dag_id,
        run_id=info.run_id,
        task_id=info.task_id,
        map_index=info.map_index,
        try_number=info.try_number,
        logical_date=info.logical_date,
        data_interval_start=info.data_interval_start,
        data_interval_end=info.data_interval_end,
    )


def _to_wit(ending: object) -> wit.Outcome:
    """The WIT outcome for how a try ended; raises `Err` for a failure, which
    is how componentize-py returns a result's error case."""
    if isinstance(ending, Returned):
        return wit.Outcome_Success(ending.json)
    if isinstance(ending, Skip):
        return wit.Outcome_Skip(ending.reason)
    if isinstance(ending, Branch):
        return wit.Outcome_Branch(list(ending.task_ids))
    if isinstance(ending, Reschedule):
        return wit.Outcome_Reschedule(ending.seconds)
    if isinstance(ending, SkipDownstream):
        scope = wit.SkipScope.ALL if ending.all else wit.SkipScope.DIRECT
        return wit.Outcome_SkipDownstream(scope)
    if isinstance(ending, Fatal):
        raise Err(wit.TaskError_Fatal(ending.message))
    assert isinstance(ending, Failed)
    raise Err(wit.TaskError_Failed(ending.message))


def export(op: Operator, module: types.ModuleType) -> None:
    """Defines `WitWorld` in `module` (the module the build names) for `op`."""
    existing = getattr(module, "WitWorld", None)
    if existing is not None:
        raise RuntimeError(
            f"module {module.__name__} defines operators {existing.operator.name} and {op.name};"
            " a component holds one operator"
        )

    class WitWorld:
        """The component's exports: `describe` and `execute`."""

        operator = op

        def describe(self) -> wit.OperatorInfo:
            return wit.OperatorInfo(op.name, op.version, op.description, json.dumps(op.params_schema))

        def execute(self, info: wit.TaskInfo, params: str) -> wit.Outcome:
            ctx = Context(_task_info(info), WitHost())
            return _to_wit(run_try(op, ctx, params))

    module.WitWorld = WitWorld
    route_logging()
    _warm_up(op)


#: How many times `_warm_up` runs the SDK's side of a try.
_WARM_UP_TRIES = 20


class _Idle(Host):
    """A host that drops logs and answers nothing, for `_warm_up`."""

    def log(self, level: str, message: str) -> None:
        pass


def _idle(ctx: Context, params: dict) -> None:
    """What `_warm_up` runs in place of the operator."""


_IDLE_OP = Operator(_idle, "warm_up", "0.0.0", "")


def _warm_up(op: Operator) -> None:
    """Runs the SDK's side of a try a few times while the component is built,
    before its memory is snapshotted, with a no-op in place of the operator.

    CPython rewrites bytecode it has run a few times into specialised forms and
    counts executions in place. Done here, those writes are in the snapshot
    instead of being repeated by every try, each of which would otherwise copy
    the pages they fall on: about 30% less CPU per no-op try, measured. The
    operator itself is never called; its params type decodes `{}` (a failure
    is expected and ignored) so the decoding path is warm too.
    """
    info = wit.TaskInfo("", "", "", None, 1, "", "", "")
    for _ in range(_WARM_UP_TRIES):
        ctx = Context(_task_info(info), _Idle())
        try:
            _to_wit(run_try(_IDLE_OP, ctx, "{}"))
        except Err:
            pass
        if op.takes_params:
            try:
                op.params.decode("{}")
            except Exception:
                pass
