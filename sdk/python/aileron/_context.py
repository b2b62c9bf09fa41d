"""`Context`: the TaskInstance try an operator runs for (`TaskInfo`), and the
host services scoped to that try: log, XCom, variables, connections, HTTP."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ._host import Host, Refused
from ._http import Headers, Response, build_request, not_done
from ._json import encode

#: The XCom key a task's return value is stored under, as in Airflow.
RETURN_VALUE_KEY = "return_value"


@dataclass(frozen=True)
class TaskInfo:
    """What the host tells an operator about the TaskInstance try it runs.

    The defaults describe a first try of an unnamed task: a starting point for
    tests.
    """

    dag_id: str = ""
    run_id: str = ""
    task_id: str = ""
    #: Index within a mapped task; None for a task that is not mapped.
    map_index: int | None = None
    #: 1 for the first try, growing by one with every retry.
    try_number: int = 1
    #: RFC 3339 timestamps.
    logical_date: str = ""
    data_interval_start: str = ""
    data_interval_end: str = ""

    @property
    def is_retry(self) -> bool:
        """Whether this try is a retry, that is not the first try."""
        return self.try_number > 1


class XComError(Exception):
    """An XCom that could not be encoded, was refused by the host (over its size
    cap, for example), or holds something that is not JSON."""


class ConnectionUnavailable(Exception):
    """The host has no such connection for this tenant, refused to hand it out,
    or sent something that is not a connection."""


@dataclass(repr=False)
class Connection:
    """A connection, with Airflow's field names.

    A connection is host-held unless its owner marked it exposed: then
    `password` is None and `host_held` is True, and the operator uses it through
    `Context.http_with_connection` instead of reading the secret. `repr` never
    shows the password.
    """

    conn_type: str = ""
    host: str | None = None
    port: int | None = None
    login: str | None = None
    password: str | None = None
    schema: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    host_held: bool = False

    def __repr__(self) -> str:
        password = None if self.password is None else "<redacted>"
        return (
            f"Connection(conn_type={self.conn_type!r}, host={self.host!r}, port={self.port!r}, "
            f"login={self.login!r}, password={password}, schema={self.schema!r}, "
            f"extra={self.extra!r}, host_held={self.host_held!r})"
        )

    @classmethod
    def from_json(cls, text: str) -> Connection:
        """Reads the JSON object the host sends; `ValueError` if it is not one.

        `extra` may be an object, null, or (as Airflow stores it) a string
        holding a JSON object, so operators see one shape whatever was stored.
        """
        fields = json.loads(text)
        if not isinstance(fields, dict):
            raise ValueError("not a JSON object")
        extra = fields.get("extra")
        if isinstance(extra, str):
            extra = json.loads(extra) if extra.strip() else None
        if extra is None:
            extra = {}
        if not isinstance(extra, dict):
            raise ValueError("`extra` is not a JSON object")
        port = fields.get("port")
        if isinstance(port, str) and port.isdigit():
            port = int(port)
        if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
            raise ValueError("`port` is not a number")
        return cls(
            conn_type=fields.get("conn_type") or "",
            host=fields.get("host"),
            port=port,
            login=fields.get("login"),
            password=fields.get("password"),
            schema=fields.get("schema"),
            extra=extra,
            host_held=bool(fields.get("host_held", False)),
        )


class TaskLog:
    """The try's log: `ctx.log.info("...")`.

    Records of Python's `logging` (INFO and up) reach it too, and inside a
    component so does whatever the operator prints.
    """

    def __init__(self, host: Host):
        self._host = host

    def debug(self, message: str) -> None:
        self._host.log("debug", str(message))

    def info(self, message: str) -> None:
        self._host.log("info", str(message))

    def warning(self, message: str) -> None:
        self._host.log("warning", str(message))

    def error(self, message: str) -> None:
        self._host.log("error", str(message))


class Context:
    """Everything an operator may reach outside its own memory during one try.

    The operator function receives it as its first argument. Every call goes to
    the host, which checks it against the TaskInstance's grants and meters it,
    so an operator needs no credentials of its own. In tests, `TestHost` makes
    one.
    """

    def __init__(self, task: TaskInfo, host: Host):
        self.task = task
        self.log = TaskLog(host)
        self._host = host

    def __repr__(self) -> str:
        return f"Context(task={self.task!r})"

    def xcom_push(self, key: str, value: Any) -> None:
        """Stores `value` (anything JSON can encode, dataclasses and enums
        included) under `key` for this TaskInstance.

        The return value is pushed as `return_value` by the host; this is for
        additional keys.
        """
        try:
            text = encode(value)
        except (TypeError, ValueError) as error:
            raise XComError(f"could not encode XCom `{key}` as JSON: {error}") from None
        try:
            self._host.xcom_push(key, text)
        except Refused as refusal:
            raise XComError(f"the host refused XCom `{key}`: {refusal}") from None

    def xcom_pull(self, task_id: str, key: str = RETURN_VALUE_KEY) -> Any:
        """The XCom `key` of `task_id` in the same DagRun, decoded from JSON;
        None when there is none. For a mapped task it is a list with one
        element per map index."""
        text = self._host.xcom_pull(task_id, key)
        if text is None:
            return None
        try:
            return json.loads(text)
        except ValueError:
            raise XComError(f"XCom `{key}` of task `{task_id}` is not JSON") from None

    def variable(self, key: str) -> str | None:
        """The variable `key` of this DAG's tenant, or None."""
        return self._host.variable(key)

    def connection(self, conn_id: str) -> Connection:
        """The connection `conn_id` of this DAG's tenant.

        Unless the connection is marked exposed, its `password` is None here:
        the host keeps it, and `http_with_connection` uses it.
        """
        try:
            text = self._host.connection(conn_id)
        except Refused as refusal:
            raise ConnectionUnavailable(f"connection `{conn_id}` is not available: {refusal}") from None
        try:
            return Connection.from_json(text)
        except ValueError as error:
            raise ConnectionUnavailable(
                f"connection `{conn_id}` does not have the expected shape: {error}"
            ) from None

    def http(
        self,
        method: str,
        url: str,
        *,
        headers: Headers | None = None,
        body: bytes | str | None = None,
        json: Any = None,
        timeout: float | None = None,
    ) -> Response:
        """Sends an HTTP request and waits for the whole response.

        The host lets it through only to the hosts in the task's `allow_hosts`;
        a refused request raises `HttpError` (and the host writes why to the
        try's log). `json` is encoded as the body with its content type;
        `timeout` (seconds) bounds connecting, the first byte and each later
        one, within the host's own cap of 30 s. Redirects are not followed.
        """
        if timeout is not None and not timeout > 0:
            raise ValueError("timeout is a number of seconds greater than 0")
        request = build_request(method, url, headers, body, json)
        return self._host.http(request, timeout)

    def http_with_connection(
        self,
        conn_id: str,
        method: str,
        url: str,
        *,
        headers: Headers | None = None,
        body: bytes | str | None = None,
        json: Any = None,
    ) -> Response:
        """Sends a request with the credential of connection `conn_id` added by
        the host (basic auth, a bearer token, a header or a query parameter, as
        the connection says), without the operator ever holding the secret.

        `url` is a path on the connection's origin (`/v1/items?page=2`) or an
        absolute URL naming the connection's host and port; the host refuses any
        other, and does not follow redirects. `HttpError` says why a request was
        not sent or got no answer.
        """
        request = build_request(method, url, headers, body, json)
        try:
            return self._host.http_with_connection(conn_id, request)
        except Refused as refusal:
            raise not_done(conn_id, str(refusal)) from None

