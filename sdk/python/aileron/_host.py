"""The seam between `Context` and the host: the WIT imports inside a component
(`_component.WitHost`), an in-memory double in tests (`testing.TestHost`)."""

from __future__ import annotations

from ._http import Request, Response


class Refused(Exception):
    """The host's `err` answer to a call, with its reason."""


class Host:
    """The `context` interface of the WIT world (plus outbound HTTP), in plain
    Python types.

    JSON stays text here: encoding and decoding belong to `Context`, so both
    implementations see exactly what crosses the component boundary.
    """

    def log(self, level: str, message: str) -> None:
        """`level` is `debug`, `info`, `warning` or `error`."""
        raise NotImplementedError

    def xcom_push(self, key: str, value: str) -> None:
        """Raises `Refused`."""
        raise NotImplementedError

    def xcom_pull(self, task_id: str, key: str) -> str | None:
        raise NotImplementedError

    def variable(self, key: str) -> str | None:
        raise NotImplementedError

    def connection(self, conn_id: str) -> str:
        """Raises `Refused`."""
        raise NotImplementedError

    def http_with_connection(self, conn_id: str, request: Request) -> Response:
        """Raises `Refused`."""
        raise NotImplementedError

    def http(self, request: Request, timeout: float | None) -> Response:
        """Raises `HttpError`."""
        raise NotImplementedError
