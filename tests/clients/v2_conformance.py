"""Holds Aileron's /api/v2 to Airflow 3's own OpenAPI document: every operation
Aileron's document lists must be one of Airflow's (same path, method and
operationId), and each answer's body must validate against the schema Airflow's
document gives that operation and status. Run by
`tests/it/airflow_clients.rs` after the Airflow 3 client script has left a
finished run, its XCom and a variable behind:

    python v2_conformance.py URL USERNAME PASSWORD AIRFLOW_SPEC.yaml

Prints `ok` and the number of operations checked.
"""

import json
import os
import sys
import urllib.error
import urllib.request

import yaml
from jsonschema import Draft202012Validator

URL, USER, PASSWORD, SPEC = sys.argv[1:5]
PREFIX = "/api/v2"

# What the path parameters name on the server the Rust test set up.
PATH_VALUES = {
    "dag_id": "client_dag",
    "dag_run_id": "from_client",
    "task_id": "greet",
    "try_number": "1",
    "xcom_key": "return_value",
    "variable_key": "from_client",
    "pool_name": "default_pool",
    "connection_id": "conformance",
    "map_index": "1",
    "version_number": "1",
    # hex of the client DAG's file name
    "file_token": "client_dag.toml".encode().hex(),
    "task_try_number": "1",
    "section": "core",
    "option": "executor",
}

# The client DAG's mapped task, for the operations on mapped TaskInstances.
MAPPED_TASK = "fan"

# Sixty dates one at a time, each run a few seconds long.
BACKFILL = {
    "dag_id": "daily_dag",
    "from_date": "2026-01-01T00:00:00Z",
    "to_date": "2026-03-01T00:00:00Z",
    "max_active_runs": 1,
}

# Query strings of reads that cannot go without one.
QUERIES = {"/backfills": "?dag_id=daily_dag"}

# Reads of the platform's own state (its processes): a tenant's Admin is
# refused with Airflow's 403 body; the platform admin (whose password the test
# passes in AILERON_ADMIN_PASSWORD) reads them.
PLATFORM = {"/jobs", "/config", "/config/section/{section}/option/{option}"}

# The calls that change something, in an order that leaves each one's
# precondition in place (the deletions run after every read, the rest before): (method, operation's path, path values that differ
# from PATH_VALUES, JSON body, status wanted). Every such operation Aileron
# serves must be here.
CHANGES = [
    ("PATCH", "/dags/{dag_id}", {}, {"is_paused": False}, 200),
    ("PATCH", "/dags", {}, {"is_paused": False}, 200),
    ("PUT", "/parseDagFile/{file_token}", {}, None, 201),
    ("POST", "/dags/{dag_id}/favorite", {}, None, 204),
    ("POST", "/dags/{dag_id}/unfavorite", {}, None, 204),
    ("POST", "/dags/{dag_id}/dagRuns", {}, {"dag_run_id": "conformance", "logical_date": None}, 200),
    ("PATCH", "/dags/{dag_id}/dagRuns/{dag_run_id}", {"dag_run_id": "conformance"}, {"note": "checked"}, 200),
    ("POST", "/dags/{dag_id}/dagRuns/{dag_run_id}/clear", {}, {"dry_run": True}, 200),
    ("PATCH", "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/dry_run", {}, {"new_state": "failed"}, 200),
    (
        "PATCH",
        "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}/dry_run",
        {"task_id": "fan"},
        {"new_state": "failed"},
        200,
    ),
    # Marking what is already so changes nothing, and answers nothing changed.
    ("PATCH", "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}", {}, {"new_state": "success"}, 200),
    (
        "PATCH",
        "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}",
        {"task_id": "fan"},
        {"new_state": "success"},
        200,
    ),
    (
        "POST",
        "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries",
        {},
        {"key": "by_hand", "value": {"n": 1}},
        201,
    ),
    (
        "PATCH",
        "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries/{xcom_key}",
        {"xcom_key": "by_hand"},
        {"value": [1, 2]},
        200,
    ),
    (
        "DELETE",
        "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries/{xcom_key}",
        {"xcom_key": "by_hand"},
        None,
        204,
    ),
    ("POST", "/dags/{dag_id}/dagRuns/list", {"dag_id": "~"}, {"dag_ids": ["client_dag"], "states": ["success"]}, 200),
    (
        "POST",
        "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/list",
        {"dag_id": "~", "dag_run_id": "~"},
        {"dag_ids": ["client_dag"], "state": ["success"], "start_date_gte": "2000-01-01T00:00:00Z"},
        200,
    ),
    (
        "POST",
        "/dags/{dag_id}/clearTaskInstances",
        {},
        {"dry_run": True, "dag_run_id": "from_client", "only_failed": False},
        200,
    ),
    ("POST", "/variables", {}, {"key": "conformance", "value": "1"}, 201),
    ("PATCH", "/variables/{variable_key}", {"variable_key": "conformance"}, {"key": "conformance", "value": "2"}, 200),
    ("DELETE", "/variables/{variable_key}", {"variable_key": "conformance"}, None, 204),
    ("DELETE", "/dags/{dag_id}/dagRuns/{dag_run_id}", {"dag_run_id": "conformance"}, None, 204),
    ("POST", "/pools", {}, {"name": "conformance", "slots": 2}, 201),
    ("PATCH", "/pools/{pool_name}", {"pool_name": "conformance"}, {"pool": "conformance", "slots": 3}, 200),
    ("DELETE", "/pools/{pool_name}", {"pool_name": "conformance"}, None, 204),
    ("POST", "/backfills/dry_run", {}, BACKFILL, 200),
    ("POST", "/backfills", {}, BACKFILL, 200),
    ("PUT", "/backfills/{backfill_id}/pause", {}, None, 200),
    ("PUT", "/backfills/{backfill_id}/unpause", {}, None, 200),
    ("PUT", "/backfills/{backfill_id}/cancel", {}, None, 200),
    ("POST", "/connections", {}, {"connection_id": "conformance", "conn_type": "http", "password": "s3cret"}, 201),
    ("PATCH", "/connections/{connection_id}", {}, {"connection_id": "conformance", "conn_type": "http", "host": "h"}, 200),
    ("POST", "/connections/test", {}, {"connection_id": "conformance", "conn_type": "http"}, 200),
    ("DELETE", "/connections/{connection_id}", {}, None, 204),
    # Last: the client DAG with its history (its file stays, so it comes back).
    ("DELETE", "/dags/{dag_id}", {}, None, 200),
]


def token(user: str = USER, password: str = PASSWORD) -> str:
    body = json.dumps({"username": user, "password": password}).encode()
    request = urllib.request.Request(
        f"{URL}/auth/token", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request) as response:
        return json.load(response)["access_token"]


def call(method: str, path: str, body, bearer: str):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{URL}{PREFIX}{path}",
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, json.loads(raw) if raw else None


# Aileron's own operations, which Airflow's document does not have: the access
# matrix calls them; here they must only not take a path Airflow uses.
AILERON_OWN = {
    "get_operators",
    "post_operator",
    "delete_operator",
    "post_platform_operator",
    "delete_platform_operator",
    "get_dag_run_callbacks",
    "db_clean",
    "get_workers",
    "get_events",
    "get_me",
    "get_tenants",
    "post_tenant",
    "get_tenant",
    "patch_tenant",
    "delete_tenant",
    "get_tenant_usage",
    "get_users",
    "post_user",
    "get_user",
    "patch_user",
    "delete_user",
    "get_members",
    "put_member",
    "delete_member",
    "get_tokens",
    "post_token",
    "delete_token",
    "get_platform_tokens",
    "post_platform_token",
    "delete_platform_token",
    "get_platform_event_logs",
}

# Operations that answer newline-delimited JSON rather than one document.
STREAMS = {"/dags/{dag_id}/dagRuns/{dag_run_id}/wait"}


def stream(path: str, bearer: str) -> list:
    request = urllib.request.Request(f"{URL}{PREFIX}{path}", headers={"Authorization": f"Bearer {bearer}"})
    with urllib.request.urlopen(request) as response:
        assert response.headers["Content-Type"] == "application/x-ndjson", response.headers
        return [json.loads(line) for line in response.read().decode().splitlines() if line.strip()]


def fill(template: str, overrides=None) -> str:
    path = template
    for name, value in {**PATH_VALUES, **(overrides or {})}.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, f"no value for a parameter of {template}"
    return path


def any_of(node):
    """Airflow's `oneOf`s as `anyOf`s: its models allow fields beyond their own,
    so alternatives overlap (every `TaskInstanceResponse` is also a
    `NewTaskResponse`) and an answer Airflow itself gives would match two."""
    if isinstance(node, dict):
        return {("anyOf" if k == "oneOf" else k): any_of(v) for k, v in node.items()}
    if isinstance(node, list):
        return [any_of(v) for v in node]
    return node


def main() -> None:
    airflow = any_of(yaml.safe_load(open(SPEC)))
    bearer = token()
    status, ours = call("GET", "/openapi.json", None, bearer)
    assert status == 200, status

    def check(method: str, template: str, status: int, body) -> None:
        operation = airflow["paths"][PREFIX + template][method.lower()]
        response = operation["responses"].get(str(status))
        assert response is not None, f"{method} {template}: Airflow never answers {status}"
        schema = (response.get("content") or {}).get("application/json", {}).get("schema")
        if schema is None:
            assert body is None, f"{method} {template} {status}: Airflow answers no body, got {body}"
            return
        # The document's components travel with the schema so its `$ref`s resolve.
        validator = Draft202012Validator({**schema, "components": airflow["components"]})
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
        assert not errors, f"{method} {template} {status}: " + "; ".join(
            f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5]
        )

    operations = []
    for template, item in ours["paths"].items():
        for method, operation in item.items():
            if method not in ("get", "post", "patch", "put", "delete"):
                continue
            theirs = airflow["paths"].get(PREFIX + template, {}).get(method)
            if operation["operationId"] in AILERON_OWN:
                assert theirs is None, f"{method.upper()} {template}: Aileron's own, on a path Airflow uses"
                continue
            assert theirs is not None, f"{method.upper()} {template} is not in Airflow's document"
            assert operation["operationId"] == theirs["operationId"], (
                f"{method.upper()} {template}: operationId {operation['operationId']}, "
                f"Airflow's {theirs['operationId']}"
            )
            operations.append((method.upper(), template))

    changes = {(m, t) for m, t, _, _, _ in CHANGES}
    assert all(m == "GET" or (m, t) in changes for m, t in operations), [
        f"{m} {t} has no call in CHANGES" for m, t in operations if m != "GET" and (m, t) not in changes
    ]

    admin = token("admin", os.environ["AILERON_ADMIN_PASSWORD"])

    def run(method, template, overrides, body, want):
        path = fill(template, overrides) + (QUERIES.get(template, "") if method == "GET" else "")
        if template in PLATFORM:
            status, answer = call(method, path, body, bearer)
            assert status == 403, f"{method} {template} as a tenant's Admin: {status} {answer}"
            check(method, template, status, answer)
        status, answer = call(method, path, body, admin if template in PLATFORM else bearer)
        assert status == want, f"{method} {template}: {status} {answer}"
        check(method, template, status, answer)
        if (method, template) == ("POST", "/backfills"):
            PATH_VALUES["backfill_id"] = str(answer["id"])
        return answer

    for change in CHANGES:
        if change[0] != "DELETE":
            run(*change)
    # Ids that only the server knows.
    PATH_VALUES["event_log_id"] = str(call("GET", "/eventLogs?limit=1", None, bearer)[1]["event_logs"][0]["event_log_id"])
    PATH_VALUES["import_error_id"] = str(call("GET", "/importErrors", None, bearer)[1]["import_errors"][0]["import_error_id"])
    for method, template in operations:
        if method == "GET" and template not in STREAMS:
            mapped = "{map_index}" in template or template.endswith("/listMapped")
            run("GET", template, {"task_id": MAPPED_TASK} if mapped else {}, None, 200)
    # The run the client waited for is finished: one line, with its result.
    lines = stream("/dags/client_dag/dagRuns/from_client/wait?interval=0.1&result=greet", bearer)
    assert lines == [{"state": "success", "results": {"greet": "hello hi"}}], lines
    # A password goes in and never comes back out.
    connections = call("GET", "/connections", None, bearer)[1]["connections"]
    assert [c["password"] for c in connections] == [None], connections
    for change in CHANGES:
        if change[0] == "DELETE":
            run(*change)

    # Errors: a missing DAG, and a body that does not validate.
    status, body = call("GET", "/dags/no_such_dag", None, bearer)
    assert status == 404, status
    check("GET", "/dags/{dag_id}", 404, body)
    status, body = call("POST", "/variables", {"value": "no key"}, bearer)
    assert status == 422, status
    check("POST", "/variables", 422, body)
    print(f"ok {len(operations)}")


main()
