"""The params schema derived from a dataclass, and decoding params JSON into it."""

import enum
import json
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import pytest

from aileron import Context, operator, param
from aileron.testing import TestHost


class Mode(enum.Enum):
    FULL = "full"
    DELTA = "delta"


@dataclass
class Batch:
    """How rows are grouped."""

    size: int
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class Params:
    source: str = param(description="Where to read from")
    batch: Batch
    ratio: float = 0.5
    dry_run: bool = False
    tables: list[str] = field(default_factory=list)
    limit: Optional[int] = None
    region: str | None = None
    level: Literal["low", "high"] = "low"
    mode: Mode = Mode.FULL


@operator(name="load", version="1.2.3")
def load(ctx: Context, params: Params) -> dict:
    """Loads rows."""
    return {"source": params.source, "size": params.batch.size, "mode": params.mode}


def test_schema_follows_the_dataclass():
    assert load.params_schema == {
        "type": "object",
        "properties": {
            "source": {"type": "string", "description": "Where to read from"},
            "batch": {
                "type": "object",
                "description": "How rows are grouped.",
                "properties": {
                    "size": {"type": "integer"},
                    "labels": {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                        "default": {},
                    },
                },
                "required": ["size"],
                "additionalProperties": False,
            },
            "ratio": {"type": "number", "default": 0.5},
            "dry_run": {"type": "boolean", "default": False},
            "tables": {"type": "array", "items": {"type": "string"}, "default": []},
            "limit": {"type": ["integer", "null"], "default": None},
            "region": {"type": ["string", "null"], "default": None},
            "level": {"type": "string", "enum": ["low", "high"], "default": "low"},
            "mode": {"type": "string", "enum": ["full", "delta"], "default": "full"},
        },
        "required": ["source", "batch"],
        "additionalProperties": False,
    }
    assert json.loads(json.dumps(load.params_schema)) == load.params_schema


def test_describe_takes_name_version_and_docstring():
    assert (load.name, load.version, load.description) == ("load", "1.2.3", "Loads rows.")


def test_valid_params_decode_into_the_dataclass():
    @operator(name="echo_params", version="0.1.0")
    def echo_params(ctx: Context, params: Params) -> Any:
        return {"params": repr(params)}

    result = TestHost().run(
        echo_params,
        {"source": "s3", "batch": {"size": 3.0, "labels": {"a": "b"}}, "mode": "delta", "limit": 7},
    )
    assert result.kind == "success"
    decoded = result.value["params"]
    assert "batch=Batch(size=3, labels={'a': 'b'})" in decoded
    assert "mode=<Mode.DELTA: 'delta'>" in decoded
    assert "limit=7" in decoded
    assert "ratio=0.5" in decoded


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"source": "s3", "batch": {"size": "10"}}, "invalid params at `batch.size`: expected integer, got string"),
        ({"source": "s3", "batch": {"size": 1.5}}, "invalid params at `batch.size`: expected integer, got number"),
        ({"source": "s3", "batch": {"size": True}}, "invalid params at `batch.size`: expected integer, got boolean"),
        ({"batch": {"size": 1}}, "invalid params: missing field `source`"),
        ({"source": "s3", "batch": {}}, "invalid params at `batch`: missing field `size`"),
        (
            {"source": "s3", "batch": {"size": 1}, "sourse": "x"},
            "invalid params: unknown field `sourse` (expected one of: batch, dry_run, level, limit,"
            " mode, ratio, region, source, tables)",
        ),
        ({"source": "s3", "batch": {"size": 1}, "tables": ["a", 2]}, "invalid params at `tables[1]`: expected string, got integer"),
        (
            {"source": "s3", "batch": {"size": 1, "labels": {"odd key": 1}}},
            'invalid params at `batch.labels["odd key"]`: expected string, got integer',
        ),
        ({"source": "s3", "batch": {"size": 1}, "limit": "5"}, "invalid params at `limit`: expected integer or null, got string"),
        ({"source": "s3", "batch": {"size": 1}, "level": "mid"}, 'invalid params at `level`: expected one of "low", "high", got "mid"'),
        ({"source": "s3", "batch": {"size": 1}, "mode": 1}, 'invalid params at `mode`: expected one of "full", "delta", got 1'),
        ({"source": "s3", "batch": {"size": 1}, "ratio": "x"}, "invalid params at `ratio`: expected number, got string"),
        ({"source": "s3", "batch": None}, "invalid params at `batch`: expected object, got null"),
        ("[1]", "invalid params: expected object, got array"),
        ("{", "invalid params: not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
    ],
)
def test_params_that_do_not_fit_end_the_try_fatal_naming_the_field(params, error):
    result = TestHost().run(load, params)
    assert (result.kind, result.error) == ("fatal", error)


def test_ints_are_numbers_and_whole_floats_are_integers():
    @dataclass
    class Numbers:
        count: int
        ratio: float

    @operator(name="numbers", version="0.1.0")
    def numbers(ctx: Context, params: Numbers) -> list:
        return [type(params.count).__name__, type(params.ratio).__name__]

    assert TestHost().run(numbers, {"count": 2.0, "ratio": 1}).value == ["int", "float"]


def test_unions_pick_the_option_the_value_fits():
    @dataclass
    class Either:
        value: int | str
        nested: Batch | None = None

    @operator(name="either", version="0.1.0")
    def either(ctx: Context, params: Either) -> list:
        return [params.value, params.nested.size if params.nested else None]

    assert either.params_schema["properties"]["value"] == {"type": ["integer", "string"]}
    assert "anyOf" in either.params_schema["properties"]["nested"]
    host = TestHost()
    assert host.run(either, {"value": "x"}).value == ["x", None]
    assert host.run(either, {"value": 3, "nested": {"size": 4}}).value == [3, 4]
    assert host.run(either, {"value": True}).error == (
        "invalid params at `value`: expected integer or string, got boolean"
    )
    assert host.run(either, {"value": 1, "nested": {"size": "4"}}).error == (
        "invalid params at `nested.size`: expected integer, got string"
    )


def test_operators_without_params_or_with_a_dict_take_any_object():
    @operator(name="bare", version="0.1.0")
    def bare(ctx: Context) -> str:
        return "ran"

    @operator(name="loose", version="0.1.0")
    def loose(ctx: Context, params: dict) -> dict:
        return params

    assert bare.params_schema == {"type": "object"}
    assert loose.params_schema == {"type": "object"}
    host = TestHost()
    assert host.run(bare, {"anything": 1}).value == "ran"
    assert host.run(loose, {"a": [1, {"b": None}]}).value == {"a": [1, {"b": None}]}


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        (tuple[int, int], "params.pair: tuple[int, int] is not supported"),
        (dict[int, str], "params.pair: JSON object keys are strings"),
        (bytes, "params.pair: bytes is not supported"),
    ],
)
def test_unsupported_field_types_are_refused_at_decoration(annotation, message):
    @dataclass
    class Bad:
        pair: annotation  # type: ignore[valid-type]

    with pytest.raises(TypeError, match=message.replace("[", r"\[").replace("]", r"\]")):

        @operator(name="bad", version="0.1.0")
        def bad(ctx: Context, params: Bad) -> None:
            return None


@dataclass
class Node:
    children: "list[Node]"


def test_a_dataclass_that_contains_itself_is_refused():
    with pytest.raises(TypeError, match="contains itself"):

        @operator(name="tree", version="0.1.0")
        def tree(ctx: Context, params: Node) -> None:
            return None


def test_the_params_type_must_be_an_object_type():
    with pytest.raises(TypeError, match="must be a dataclass"):

        @operator(name="listy", version="0.1.0")
        def listy(ctx: Context, params: list) -> None:
            return None


def test_a_post_init_check_that_raises_value_error_is_a_params_error():
    @dataclass
    class Window:
        start: int
        end: int

        def __post_init__(self):
            if self.end < self.start:
                raise ValueError("end is before start")

    @dataclass
    class Windowed:
        window: Window

    @operator(name="windowed", version="0.1.0")
    def windowed(ctx: Context, params: Windowed) -> int:
        return params.window.end - params.window.start

    host = TestHost()
    assert host.run(windowed, {"window": {"start": 1, "end": 3}}).value == 2
    result = host.run(windowed, {"window": {"start": 3, "end": 1}})
    assert (result.kind, result.error) == ("fatal", "invalid params at `window`: end is before start")
