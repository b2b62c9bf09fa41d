"""{{name}}: an Aileron operator that greets someone.

It logs the greeting, shares the name as the `name` XCom and returns the
greeting, which becomes the task's `return_value` XCom.
"""

from dataclasses import dataclass

from aileron import Context, operator, param


@dataclass
class Params:
    name: str = param(description="Who to greet")


@operator(name="{{name}}", version="0.1.0")
def {{ident}}(ctx: Context, params: Params) -> str:
    """Greets `name` and returns the greeting."""
    greeting = f"Hello, {params.name}!"
    ctx.log.info(greeting)
    ctx.xcom_push("name", params.name)
    return greeting
