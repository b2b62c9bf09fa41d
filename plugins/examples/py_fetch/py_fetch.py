"""py_fetch: GETs a JSON document over HTTP (to a host in the task's
`allow_hosts`) and returns the status and one field of it."""

from dataclasses import dataclass
from typing import Any

from aileron import Context, Failed, Fatal, operator, param


@dataclass
class Params:
    url: str = param(description="The http or https URL to GET")
    field: str = param(description="The field to return, as a dotted path: `data.id`")
    timeout: float = param(10.0, description="Seconds to wait for the server")


@operator(name="py_fetch", version="0.1.0")
def py_fetch(ctx: Context, params: Params) -> dict[str, Any]:
    """GETs `url` and returns `{"status": ..., "value": <field of the JSON body>}`."""
    response = ctx.http(
        "GET", params.url, headers={"accept": "application/json"}, timeout=params.timeout
    )
    ctx.log.info(f"GET {params.url}: {response.status}, {len(response.body)} bytes")
    if not response.ok:
        # A server error may pass; let the task's retries try again.
        raise Failed(f"GET {params.url} answered {response.status}")
    try:
        value = response.json()
    except ValueError:
        raise Fatal(f"GET {params.url} did not answer JSON") from None
    for key in params.field.split("."):
        if not isinstance(value, dict) or key not in value:
            raise Fatal(f"the answer of {params.url} has no field `{params.field}`")
        value = value[key]
    return {"status": response.status, "value": value}
