"""py_greet: greets someone, optionally together with what an upstream task
returned, and shares the name it greeted as an XCom."""

from dataclasses import dataclass
from typing import Optional

from aileron import Context, operator, param


@dataclass
class Params:
    name: str = param(description="Who to greet")
    template: str = param("Hello, {name}!", description="The greeting; `{name}` is replaced")
    times: int = param(1, description="How many times to say it")
    upstream: Optional[str] = param(
        None, description="A task whose return value is added to the greeting"
    )


@operator(name="py_greet", version="0.1.0")
def py_greet(ctx: Context, params: Params) -> str:
    """Greets `name`; with `upstream`, adds that task's return value."""
    greeting = " ".join([params.template.format(name=params.name)] * params.times)
    if params.upstream is not None:
        pulled = ctx.xcom_pull(params.upstream)
        if pulled is not None:
            greeting += f" ({params.upstream} said: {pulled})"
    ctx.xcom_push("name", params.name)
    ctx.log.info(greeting)
    return greeting
