"""The one JSON encoding for everything an operator hands the host: return
values, XComs and request bodies."""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Any


def _plain(value: Any) -> Any:
    # Dataclasses and enums are how operators model data here, so they encode as
    # the objects and values they stand for rather than failing.
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def encode(value: Any) -> str:
    """Compact JSON for `value`; `TypeError` or `ValueError` if it has none.

    NaN and infinities are refused: the host's JSON parser rejects them.
    """
    return json.dumps(
        value, default=_plain, allow_nan=False, ensure_ascii=False, separators=(",", ":")
    )
