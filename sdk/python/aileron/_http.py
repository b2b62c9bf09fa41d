"""HTTP as operators see it: `Request`, `Response` and `HttpError`, shared by
outbound requests (`Context.http`, over `wasi:http`) and requests through a
connection (`Context.http_with_connection`, where the host adds the secret)."""

from __future__ import annotations

import json as _json
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from ._json import encode

#: Header names and values, as a mapping or as pairs (to repeat a name).
Headers = Union[Mapping[str, str], Iterable[tuple[str, str]]]


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    name = name.lower()
    return next((v for n, v in headers if n.lower() == name), None)


class _Message:
    """What a request and a response share: headers, and a body to read."""

    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header `name` (compared without case)."""
        return _header(self.headers, name)

    @property
    def text(self) -> str:
        """The body as UTF-8 text (invalid bytes replaced)."""
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body decoded from JSON."""
        return _json.loads(self.body)


@dataclass
class Request(_Message):
    """A request an operator sends: what a `TestHost` handler receives."""

    method: str
    url: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


@dataclass
class Response(_Message):
    """What the server answered. Redirects are not followed: a 3xx comes back
    as it is."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @classmethod
    def from_json(cls, value: Any, status: int = 200) -> Response:
        """A response with `value` as its JSON body, for test handlers."""
        return cls(status, [("content-type", "application/json")], encode(value).encode())

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300


class HttpError(Exception):
    """A request that got no response: refused by the host, or the server could
    not be reached. `reason` is why; `code` is the `wasi:http` error code for
    outbound requests (`HTTP-request-denied`, ...), None otherwise.

    Left uncaught it fails the try (retried while retries remain), like any
    other exception.
    """

    def __init__(self, message: str, *, reason: str, code: str | None = None):
        super().__init__(message)
        self.reason = reason
        self.code = code


def build_request(
    method: str,
    url: str,
    headers: Headers | None,
    body: bytes | str | None,
    json: Any,
) -> Request:
    """The `Request` for `Context.http`'s arguments: `json` becomes the body with
    its content type, text is sent as UTF-8."""
    if not isinstance(method, str) or not method:
        raise TypeError("the HTTP method is a string such as 'GET'")
    pairs = list(headers.items() if isinstance(headers, Mapping) else headers or ())
    for name, value in pairs:
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("HTTP header names and values are strings")
    if json is not None:
        if body is not None:
            raise TypeError("give `body` or `json`, not both")
        body = encode(json)
        if _header(pairs, "content-type") is None:
            pairs.append(("content-type", "application/json"))
    if isinstance(body, str):
        body = body.encode("utf-8")
    return Request(method.upper(), url, pairs, bytes(body or b""))


def split_url(method: str, url: str) -> urllib.parse.SplitResult:
    """`url`'s parts, or the `HttpError` of a URL no request can be made to."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise HttpError(
            f"{method} {url} not sent: only http and https URLs can be fetched",
            reason="not an http or https URL",
        )
    if not parts.hostname:
        raise HttpError(f"{method} {url} not sent: the URL has no host", reason="no host")
    return parts


# What the `wasi:http` error codes a refusal or a network failure comes back as
# mean for an operator's author.
_CODE_HINTS = {
    "HTTP-request-denied": "the host refused it: its host and port are not in the task's allow_hosts",
    "destination-IP-prohibited": (
        "the host refused it: the name resolves to a loopback, private or otherwise"
        " non-public address"
    ),
    "HTTP-request-URI-invalid": "the host refused the URL",
    "HTTP-protocol-error": "the host refused it: only http and https can be used",
    "DNS-timeout": "the name did not resolve in time",
    "DNS-error": "the name did not resolve",
    "destination-not-found": "the name did not resolve",
    "connection-refused": "the server refused the connection",
    "connection-timeout": "the connection timed out",
    "HTTP-response-timeout": "the server did not answer in time",
}


def refused(method: str, url: str, code: str, detail: str | None = None) -> HttpError:
    """The `HttpError` for a request that ended with `wasi:http` error `code`.

    When the host refuses a request it writes the full reason (the allow-list,
    the address) to the try's log as a warning; the guest only sees the code.
    """
    reason = _CODE_HINTS.get(code, "it failed")
    if detail:
        reason = f"{reason} ({detail})"
    message = f"{method} {url} not sent: {reason} [{code}]"
    if code in ("HTTP-request-denied", "destination-IP-prohibited"):
        message += "; the try's log says more"
    return HttpError(message, reason=reason, code=code)


def not_done(conn_id: str, reason: str) -> HttpError:
    """The `HttpError` for a request through a connection the host did not send
    or got no answer to."""
    return HttpError(
        f"HTTP request with connection `{conn_id}` not done: {reason}", reason=reason
    )
