"""`@operator`: turns one function into an Aileron operator, with its name,
version, description and the params type its schema is derived from."""

from __future__ import annotations

import functools
import inspect
import re
import sys
import typing
from collections.abc import Callable
from typing import Any

from ._params import ParamsType

# The host's rule for operator names, so a bad one fails here rather than at
# `aileron plugins add`.
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")
# Semver: DAGs pin versions as `name@MAJOR.MINOR.PATCH`.
_IDENT = r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*"
_SEMVER = re.compile(rf"(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)(?:-{_IDENT})?(?:\+{_IDENT})?")


class Operator:
    """An operator function with what the host learns from `describe`.

    Calling it calls the function unchanged; `TestHost.run` runs it as the host
    does, params decoding and outcome mapping included.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        name: str,
        version: str,
        description: str | None,
    ):
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(
                f"operator name {name!r}: 1 to 64 lower-case letters, digits, `-` and `_`,"
                " starting with a letter"
            )
        if not isinstance(version, str) or not _SEMVER.fullmatch(version):
            raise ValueError(
                f"operator version {version!r}: semver, `MAJOR.MINOR.PATCH` with optional"
                " `-pre` and `+build`"
            )
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.name = name
        self.version = version
        self.description = description if description is not None else inspect.getdoc(fn) or ""
        params_annotation = _params_annotation(fn)
        #: Whether the function takes params (a second argument).
        self.takes_params = params_annotation is not _NO_PARAMS
        self.params = ParamsType(dict if params_annotation is _NO_PARAMS else params_annotation)

    @property
    def params_schema(self) -> dict[str, Any]:
        """The JSON Schema of the params object, derived from the params type."""
        return self.params.schema

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<operator {self.name}@{self.version}>"


_NO_PARAMS = object()


def _params_annotation(fn: Callable[..., Any]) -> Any:
    """The annotation of the params argument, `dict` when it has none, or
    `_NO_PARAMS` for a function that takes the context alone."""
    where = f"@operator function {fn.__qualname__}"
    parameters = list(inspect.signature(fn).parameters.values())
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) not in (1, 2) or len(positional) != len(parameters):
        raise TypeError(f"{where} must take (ctx) or (ctx, params)")
    if len(positional) == 1:
        return _NO_PARAMS
    try:
        hints = typing.get_type_hints(fn)
    except NameError as error:
        raise TypeError(f"{where}: cannot resolve its annotations: {error}") from None
    return hints.get(positional[1].name, dict)


def operator(
    *, name: str, version: str, description: str | None = None
) -> Callable[[Callable[..., Any]], Operator]:
    """Makes the decorated function an Aileron operator.

    ```python
    @dataclass
    class Params:
        who: str = param("world", description="Who to greet")

    @operator(name="greet", version="0.1.0")
    def greet(ctx: Context, params: Params) -> str:
        \"\"\"Greets someone.\"\"\"
        return f"Hello, {params.who}"
    ```

    - `name`: what DAG files write as `operator = "greet"`.
    - `version`: semver, which DAGs may pin as `"greet@0.1.0"`.
    - `description`: defaults to the function's docstring.

    The function takes the `Context` and, optionally, its params: a dataclass
    (the params JSON Schema is derived from it) or `dict` to take them as they
    come. Params that do not fit end the try `Fatal`, naming the field.

    It returns the task's return value (None for none; anything JSON encodes),
    or `Skip`, `Branch`, `Reschedule`, `SkipDownstream`; it raises `Failed`
    (retried) or `Fatal` (not retried). Any other exception fails the try as
    `Failed`, its traceback in the try's log.

    Inside a component build this also defines `WitWorld`, the class
    componentize-py exports, in the function's module: the module that defines
    the operator is the one the build names.
    """

    def decorate(fn: Callable[..., Any]) -> Operator:
        op = Operator(fn, name, version, description)
        if sys.platform == "wasi":
            from . import _component

            _component.export(op, sys.modules[fn.__module__])
        return op

    return decorate
