"""Write Aileron operators in Python: one function, one decorator.

An Aileron operator is a WebAssembly component implementing the
`aileron:operator` WIT world; componentize-py builds one from a Python module.
This package hides the generated bindings behind `@operator`, a typed params
dataclass and `Context`, so an operator is a plain function, and
`aileron.testing.TestHost` runs it under pytest.
"""

from ._context import (
    RETURN_VALUE_KEY,
    Connection,
    ConnectionUnavailable,
    Context,
    TaskInfo,
    TaskLog,
    XComError,
)
from ._http import HttpError, Request, Response
from ._operator import Operator, operator
from ._outcome import Branch, Failed, Fatal, Reschedule, Skip, SkipDownstream
from ._params import param

__all__ = [
    "Branch",
    "Connection",
    "ConnectionUnavailable",
    "Context",
    "Failed",
    "Fatal",
    "HttpError",
    "Operator",
    "RETURN_VALUE_KEY",
    "Request",
    "Reschedule",
    "Response",
    "Skip",
    "SkipDownstream",
    "TaskInfo",
    "TaskLog",
    "XComError",
    "operator",
    "param",
]

# Errors print as `aileron.HttpError` rather than with the private module that
# defines them: that is the name authors import and catch.
for _name in __all__:
    if isinstance(globals()[_name], type) and issubclass(globals()[_name], Exception):
        globals()[_name].__module__ = __name__
del _name
