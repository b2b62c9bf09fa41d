"""Params: the JSON Schema derived from an operator's params dataclass, and the
decoding of a task's params JSON into it.

Both come from one compiled description of the type (a tree of `_Shape`s), so
what `describe` tells the host and what `execute` accepts cannot drift apart.
The schema keeps to the subset the host validates with (`type`, `enum`,
`properties`, `required`, `additionalProperties`, `items`, `anyOf`): no `$ref`,
so nested dataclasses are written inline.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from typing import Any

from ._json import encode

_SUPPORTED = (
    "str, int, float, bool, list[T], dict[str, T], Optional[T] or T | None, "
    "Literal[...], an Enum, a dataclass, Any"
)


def param(
    default: Any = dataclasses.MISSING,
    *,
    default_factory: Any = dataclasses.MISSING,
    description: str | None = None,
) -> Any:
    """A params dataclass field with a description for the params schema.

    `name: str = param("world", description="Who to greet")` is
    `dataclasses.field(default="world", metadata={"description": ...})`.
    """
    metadata = {"description": description} if description else {}
    return dataclasses.field(
        default=default, default_factory=default_factory, metadata=metadata
    )


class ParamsError(Exception):
    """A params document that does not fit the params type, with where."""

    def __init__(self, path: tuple[str | int, ...], message: str):
        super().__init__(message)
        self.path = path
        self.message = message

    def __str__(self) -> str:
        if not self.path:
            return f"invalid params: {self.message}"
        return f"invalid params at `{format_path(self.path)}`: {self.message}"


def format_path(path: tuple[str | int, ...]) -> str:
    """`batch.size`, `items[2]`, `labels["odd key"]`: the host's notation."""
    text = ""
    for segment in path:
        if isinstance(segment, int):
            text += f"[{segment}]"
        elif _plain_key(segment):
            text += f".{segment}" if text else segment
        else:
            text += f"[{json.dumps(segment)}]"
    return text


def _plain_key(key: str) -> bool:
    return (
        bool(key)
        and not key[0].isdigit()
        and all(c.isascii() and (c.isalnum() or c in "_-") for c in key)
    )


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _same(a: Any, b: Any) -> bool:
    # `True == 1` in Python, not in JSON.
    return type(a) is type(b) and a == b


class _Shape:
    """One node of a compiled params type."""

    #: What a message says this shape expects, such as `integer` or `object`.
    expected = "a value"

    def schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def accepts_type(self, value: Any) -> bool:
        """Whether the value's JSON type is one this shape may decode."""
        raise NotImplementedError

    def decode(self, value: Any, path: tuple[str | int, ...]) -> Any:
        raise NotImplementedError

    def mismatch(self, value: Any, path: tuple[str | int, ...]) -> ParamsError:
        return ParamsError(path, f"expected {self.expected}, got {json_type(value)}")


class _Any(_Shape):
    expected = "any value"

    def schema(self) -> dict[str, Any]:
        return {}

    def accepts_type(self, value: Any) -> bool:
        return True

    def decode(self, value: Any, path: tuple[str | int, ...]) -> Any:
        return value


class _Scalar(_Shape):
    def __init__(self, kind: str):
        self.kind = kind
        self.expected = kind

    def schema(self) -> dict[str, Any]:
        return {"type": self.kind}

    def accepts_type(self, value: Any) -> bool:
        kind = json_type(value)
        if self.kind == "number":
            return kind in ("integer", "number")
        if self.kind == "integer":
            # JSON Schema (and the host) count 3.0 as an integer.
            return kind == "integer" or (kind == "number" and value.is_integer())
        return kind == self.kind

    def decode(self, value: Any, path: tuple[str | int, ...]) -> Any:
        if not self.accepts_type(value):
            raise self.mismatch(value, path)
        if self.kind == "integer":
            return int(value)
        if self.kind == "number":
            return float(value)
        return value


class _Null(_Shape):
    expected = "null"

    def schema(self) -> dict[str, Any]:
        return {"type": "null"}

    def accepts_type(self, value: Any) -> bool:
        return value is None

    def decode(self, value: Any, path: tuple[str | int, ...]) -> Any:
        if value is not None:
            raise self.mismatch(value, path)
        return None


class _Choice(_Shape):
    """`Literal[...]` and `Enum`: one of a fixed set of JSON scalars."""

    def __init__(self, values: list[Any], to_python: Any):
        self.values = values
        self.to_python = to_python
        self.expected = "one of " + ", ".join(json.dumps(v) for v in values)

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {}
        kinds = {json_type(v) for v in self.values}
        if len(kinds) == 1:
            schema["type"] = kinds.pop()
        schema["enum"] = list(self.values)
        return schema

    def accepts_type(self, value: Any) -> bool:
        return any(json_type(v) == json_type(value) for v in self.values)

    def decode(self, value: Any, path: tuple[str | int, ...]) -> Any:
        for allowed in self.values:
            if _same(allowed, value):
                return self.to_python(allowed)
        if json_type(value) in ("array", "object"):
            raise self.mismatch(value, path)
        raise ParamsError(path, f"expected {self.expected}, got {json.dumps(value)}")


class _List(_Shape):
    expected = "array"

    def __init__(self, item: _Shape):
        self.item = item

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "items": self.item.schema()}

    def accepts_type(self, value: Any) -> bool:
        return isinstance(value, list)

    def decode(self, value: Any, path: tuple[str | int, ...]) -> Any:
        if not isinstance(value, list):
            raise self.mismatch(value, path)
        return [self.item.decode(v, path + (i,)) for i, v in enumerate(value)]


class _Dict(_Shape):
    expected = "object"

    def __init__(self, value: _Shape):
        self.value = value

    def schema(self) -> dict[str, Any]:
        if isinstance(self.value, _Any):
            return {"type": "object"}
        return {"type": "object", "additionalProperties": self.value.schema()}

    def accepts_type(self, value: Any) -> bool:
        return isinstance(value, dict)

    def decode(self, value: Any, path: tuple[str | int, ...]) -> Any:
        if not isinstance(value, dict):
            raise self.mismatch(value, path)
        return {k: self.value.decode(v, path + (k,)) for k, v in value.items()}


class _Union(_Shape):
    def __init__(self, options: list[_Shape]):
        self.options = options
        self.expected = " or ".join(o.expected for o in options)

    def schema(self) -> dict[str, Any]:
        schemas = [o.schema() for o in self.options]
        simple = [s.get("type") for s in schemas if set(s) == {"type"}]
        if len(simple) == len(schemas):
            # `{"type": ["integer", "null"]}` reads better than an `anyOf`.
            return {"type": simple}
        return {"anyOf": schemas}

    def accepts_type(self, value: Any) -> bool:
        return any(o.accepts_type(value) for o in self.options)

    def decode(self, value: Any, path: tuple[str | int, ...]) -> Any:
        candidates = [o for o in self.options if o.accepts_type(value)]
        if not candidates:
            raise self.mismatch(value, path)
        first_error = None
        for option in candidates:
            try:
                return option.decode(value, path)
            except ParamsError as error:
                first_error = first_error or error
        raise first_error


@dataclasses.dataclass
class _Field:
    name: str
    shape: _Shape
    required: bool
    description: str | None
    default: Any


class _Dataclass(_Shape):
    expected = "object"

    def __init__(self, cls: type, fields: list[_Field], description: str | None):
        self.cls = cls
        self.fields = fields
        self.description = description

    def schema(self) -> dict[str, Any]:
        properties = {}
        for field in self.fields:
            prop = field.shape.schema()
            if field.description:
                prop["description"] = field.description
            if field.default is not dataclasses.MISSING:
                try:
                    prop["default"] = json.loads(encode(field.default))
                except (TypeError, ValueError):
                    pass  # A default JSON cannot show stays out of the schema.
            properties[field.name] = prop
        schema: dict[str, Any] = {"type": "object"}
        if self.description:
            schema["description"] = self.description
        schema["properties"] = properties
        schema["required"] = [f.name for f in self.fields if f.required]
        schema["additionalProperties"] = False
        return schema

    def accepts_type(self, value: Any) -> bool:
        return isinstance(value, dict)

    def decode(self, value: Any, path: tuple[str | int, ...]) -> Any:
        if not isinstance(value, dict):
            raise self.mismatch(value, path)
        known = {f.name for f in self.fields}
        for key in value:
            if key not in known:
                expected = ", ".join(sorted(known)) or "no fields"
                raise ParamsError(
                    path, f"unknown field `{key}` (expected one of: {expected})"
                )
        kwargs = {}
        for field in self.fields:
            if field.name in value:
                kwargs[field.name] = field.shape.decode(value[field.name], path + (field.name,))
            elif field.required:
                raise ParamsError(path, f"missing field `{field.name}`")
        try:
            return self.cls(**kwargs)
        except ValueError as error:
            # A `__post_init__` that checks values says what is wrong by raising it.
            raise ParamsError(path, str(error)) from None


def _own_doc(cls: type) -> str | None:
    """A dataclass's docstring, unless it is the one `@dataclass` wrote itself."""
    doc = cls.__dict__.get("__doc__")
    if not doc or doc.startswith(f"{cls.__name__}("):
        return None
    return " ".join(doc.split())


def compile_type(tp: Any, where: str = "params", seen: tuple[type, ...] = ()) -> _Shape:
    """The shape of annotation `tp`; `where` names it in errors for the author."""
    if tp is Any or tp is object:
        return _Any()
    if tp is type(None) or tp is None:
        return _Null()
    if tp is bool:
        return _Scalar("boolean")
    if tp is int:
        return _Scalar("integer")
    if tp is float:
        return _Scalar("number")
    if tp is str:
        return _Scalar("string")
    if tp is list:
        return _List(_Any())
    if tp is dict:
        return _Dict(_Any())
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _compile_enum(tp, where)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _compile_dataclass(tp, where, seen)

    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        return _Union([compile_type(a, where, seen) for a in args])
    if origin is typing.Literal:
        for value in args:
            if json_type(value) in ("array", "object") or isinstance(value, enum.Enum):
                raise TypeError(f"{where}: Literal values must be str, int, float, bool or None")
        return _Choice(list(args), lambda v: v)
    if origin is list:
        return _List(compile_type(args[0], f"{where}[]", seen) if args else _Any())
    if origin is dict:
        if args and args[0] is not str:
            raise TypeError(f"{where}: JSON object keys are strings, so use dict[str, ...]")
        return _Dict(compile_type(args[1], f"{where}.*", seen) if args else _Any())
    raise TypeError(f"{where}: {_type_name(tp)} is not supported; use {_SUPPORTED}")


def _compile_enum(cls: type[enum.Enum], where: str) -> _Shape:
    values = [member.value for member in cls]
    for value in values:
        if json_type(value) in ("array", "object"):
            raise TypeError(f"{where}: the values of {cls.__name__} must be JSON scalars")
    return _Choice(values, cls)


def _compile_dataclass(cls: type, where: str, seen: tuple[type, ...]) -> _Shape:
    if cls in seen:
        raise TypeError(
            f"{where}: {cls.__name__} contains itself, which the params schema cannot express"
        )
    try:
        hints = typing.get_type_hints(cls)
    except NameError as error:
        raise TypeError(f"{where}: cannot resolve the annotations of {cls.__name__}: {error}") from None
    fields = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        fields.append(
            _Field(
                name=f.name,
                shape=compile_type(hints[f.name], f"{where}.{f.name}", seen + (cls,)),
                required=default is dataclasses.MISSING,
                description=f.metadata.get("description"),
                default=default,
            )
        )
    return _Dataclass(cls, fields, _own_doc(cls))


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is None and isinstance(tp, type):
        return tp.__name__
    return repr(tp).removeprefix("typing.")


class ParamsType:
    """An operator's params type, compiled: its schema and its decoder."""

    def __init__(self, tp: Any):
        shape = compile_type(tp)
        if not isinstance(shape, (_Dataclass, _Dict, _Any)):
            raise TypeError(
                "params: the params type must be a dataclass (or dict for params taken as they come)"
            )
        self.shape = shape
        self.schema = {"type": "object", **shape.schema()}

    def decode(self, params_json: str) -> Any:
        """The params object for `params_json`; a `ParamsError` says where it does not fit."""
        try:
            value = json.loads(params_json)
        except ValueError as error:
            raise ParamsError((), f"not valid JSON ({error})") from None
        if not isinstance(value, dict):
            raise ParamsError((), f"expected object, got {json_type(value)}")
        return self.shape.decode(value, ())
