"""How an operator says a try ended: the outcomes it returns (`Skip`, `Branch`,
`Reschedule`, `SkipDownstream`; any other value is success) and the errors it
raises (`Failed`, `Fatal`)."""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Skip:
    """The task ends `skipped`, with the reason."""

    reason: str


@dataclass(frozen=True, init=False)
class Branch:
    """Only these direct downstream tasks run; the other direct downstream tasks
    are skipped. An empty list skips them all.

    `Branch("load")` and `Branch(["load", "report"])` both work.
    """

    task_ids: tuple[str, ...]

    def __init__(self, task_ids: str | Iterable[str]):
        ids = (task_ids,) if isinstance(task_ids, str) else tuple(task_ids)
        for task_id in ids:
            if not isinstance(task_id, str):
                raise TypeError(f"Branch takes task ids as strings, not {type(task_id).__name__}")
        object.__setattr__(self, "task_ids", ids)


@dataclass(frozen=True, init=False)
class Reschedule:
    """Sensor: not ready yet; poke again after this many seconds.

    Takes seconds (int or float) or a `timedelta`; a fraction of a second is
    rounded up, so a short delay still waits rather than spinning.
    """

    seconds: int

    def __init__(self, seconds: float | datetime.timedelta):
        if isinstance(seconds, datetime.timedelta):
            seconds = seconds.total_seconds()
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise TypeError("Reschedule takes seconds or a timedelta")
        if not seconds >= 0 or math.isinf(seconds):
            raise ValueError(f"Reschedule needs a finite delay of 0 s or more, not {seconds}")
        object.__setattr__(self, "seconds", math.ceil(seconds))


@dataclass(frozen=True)
class SkipDownstream:
    """The task succeeds and short-circuits its downstream tasks (Airflow's
    ShortCircuitOperator): every task downstream whatever its trigger rule when
    `all` is true, else only the direct ones, whose trigger rules decide the rest.
    """

    all: bool = False


class _TaskError(Exception):
    """An error that ends the try with this message as its reason."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = str(message)


class Failed(_TaskError):
    """Raise to fail the try; it is retried while the task has retries left."""


class Fatal(_TaskError):
    """Raise to fail the TaskInstance at once, without retrying: for errors a
    retry cannot fix, such as invalid input."""


#: What an operator may return besides a plain value.
OUTCOMES = (Skip, Branch, Reschedule, SkipDownstream)
