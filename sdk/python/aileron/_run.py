"""One try from start to end, the same in a component and in `TestHost`: params
decoded, the operator called with Python's `logging` routed to the try's log,
and whatever it returned or raised turned into how the try ended."""

from __future__ import annotations

import contextlib
import logging
import os
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Union

from ._context import Context
from ._json import encode
from ._operator import Operator
from ._outcome import OUTCOMES, Branch, Failed, Fatal, Reschedule, Skip, SkipDownstream
from ._params import ParamsError

_SDK_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


@dataclass(frozen=True)
class Returned:
    """Success, with the return value as JSON text (None for no value)."""

    json: str | None


#: How a try ends, as the host is told.
Ending = Union[Returned, Skip, Branch, Reschedule, SkipDownstream, Failed, Fatal]


def run_try(op: Operator, ctx: Context, params_json: str) -> Ending:
    """Runs `op` for the try `ctx` with the task's params document."""
    if _ROUTED.handler is not None:
        # Inside a component: the handler is in place, only the try changes.
        _ROUTED.handler.ctx = ctx
        try:
            return _run(op, ctx, params_json)
        finally:
            _ROUTED.handler.ctx = None
    with _logging_to(ctx):
        return _run(op, ctx, params_json)


def _run(op: Operator, ctx: Context, params_json: str) -> Ending:
    try:
        if op.takes_params:
            try:
                params = op.params.decode(params_json)
            except ParamsError as error:
                # The same params will not fit on a retry either.
                return Fatal(str(error))
            value = op.fn(ctx, params)
        else:
            value = op.fn(ctx)
    except (Failed, Fatal) as error:
        return error
    except (Exception, SystemExit) as error:
        return _crashed(ctx, error)
    if isinstance(value, (Failed, Fatal, *OUTCOMES)):
        return value
    if value is None:
        return Returned(None)
    try:
        return Returned(encode(value))
    except (TypeError, ValueError) as error:
        return Failed(f"the return value cannot be stored as an XCom: {error}")


def _crashed(ctx: Context, error: BaseException) -> Failed:
    """An exception the operator did not expect: its traceback goes to the log
    and the try fails, retried like any transient failure."""
    # The first frame is `run_try` calling the operator: not the author's code.
    tb = error.__traceback__.tb_next if error.__traceback__ else None
    ctx.log.error("".join(traceback.format_exception(type(error), error, tb)).rstrip())
    reason = _describe(error)
    where = _last_frame(tb)
    if where is not None:
        filename = os.path.basename(where.tb_frame.f_code.co_filename)
        reason += f" (at {filename}:{where.tb_lineno})"
    return Failed(reason)


def _last_frame(tb: TracebackType | None) -> TracebackType | None:
    """The innermost frame of the operator's own code, or the innermost frame
    when none is: an error raised inside this SDK (an `HttpError`, say) is best
    located by the operator's line that called it."""
    last = own = None
    while tb is not None:
        last = tb
        if not tb.tb_frame.f_code.co_filename.startswith(_SDK_DIR):
            own = tb
        tb = tb.tb_next
    return own or last


def _describe(error: BaseException) -> str:
    """`ValueError: bad port` or `mymodule.MyError: ...`, as Python prints it."""
    cls = type(error)
    name = cls.__qualname__
    if cls.__module__ not in ("builtins", "__main__"):
        name = f"{cls.__module__}.{name}"
    message = str(error)
    return f"{name}: {message}" if message else name


class _TryLogHandler(logging.Handler):
    """Sends `logging` records to the try's log (none while no try runs)."""

    def __init__(self, ctx: Context | None):
        super().__init__()
        self.ctx = ctx

    def emit(self, record: logging.LogRecord) -> None:
        if self.ctx is None:
            return
        try:
            message = self.format(record)
            if record.name != "root":
                message = f"{record.name}: {message}"
            if record.levelno >= logging.ERROR:
                self.ctx.log.error(message)
            elif record.levelno >= logging.WARNING:
                self.ctx.log.warning(message)
            elif record.levelno >= logging.INFO:
                self.ctx.log.info(message)
            else:
                self.ctx.log.debug(message)
        except Exception:
            self.handleError(record)


class _Routing:
    """The handler `route_logging` installed for good, if it was."""

    handler: _TryLogHandler | None = None


_ROUTED = _Routing()


def route_logging() -> None:
    """Sends `logging` records of INFO and up to whichever try is running, for
    good: for a component, whose process runs nothing else. Done while the
    component is built, so a try does not pay for setting it up: every object a
    try touches is a page the sandbox copies for it."""
    if _ROUTED.handler is None:
        _ROUTED.handler = _TryLogHandler(None)
        root = logging.getLogger()
        root.addHandler(_ROUTED.handler)
        if root.level > logging.INFO:
            root.setLevel(logging.INFO)


def unroute_logging() -> None:
    """Undoes `route_logging` (for tests that build the component glue on a
    plain CPython and must leave `logging` as they found it)."""
    if _ROUTED.handler is not None:
        logging.getLogger().removeHandler(_ROUTED.handler)
        _ROUTED.handler = None


@contextlib.contextmanager
def _logging_to(ctx: Context) -> Iterator[None]:
    """For the duration of the call, `logging` records of INFO and up go to the
    try's log (Python's default level, WARNING, would drop INFO)."""
    handler = _TryLogHandler(ctx)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    if level > logging.INFO:
        root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
