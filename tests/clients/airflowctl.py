"""Drives an Aileron server through `airflowctl` (apache-airflow-ctl), Airflow
3's command line client, as an operator at a terminal would: sign in, list
and inspect DAGs, unpause and trigger one, read its runs, pools, variables,
connections and import errors. Run by `tests/it/airflow_clients.rs`
with the Python of airflowctl's virtualenv:

    python airflowctl.py URL USERNAME PASSWORD

The token is kept in a file under a private AIRFLOW_HOME (airflowctl's debug
mode), since a test machine has no keyring.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

URL, USER, PASSWORD = sys.argv[1:4]
DAG = "client_dag"
CTL = os.path.join(os.path.dirname(sys.executable), "airflowctl")


def ctl(*args: str, home: str) -> str:
    env = {**os.environ, "AIRFLOW_HOME": home, "AIRFLOW_CLI_DEBUG_MODE": "true"}
    done = subprocess.run([CTL, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"airflowctl {' '.join(args)}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def ctl_json(*args: str, home: str):
    return json.loads(ctl(*args, "--output", "json", home=home))


def one(answer):
    """A single object, whether airflowctl printed it alone or in a list."""
    return answer[0] if isinstance(answer, list) else answer


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        out = ctl("auth", "login", "--api-url", URL, "--username", USER, "--password", PASSWORD, home=home)
        assert "Login successful" in out, out

        dags = ctl_json("dags", "list", home=home)
        assert DAG in [d["dag_id"] for d in dags], dags
        dag = one(ctl_json("dags", "get", DAG, home=home))
        assert dag["dag_id"] == DAG, dag
        details = one(ctl_json("dags", "get-details", DAG, home=home))
        # airflowctl prints scalars as text.
        assert str(details["catchup"]) == "False", details
        ctl("dags", "unpause", DAG, home=home)
        ctl("dags", "trigger", DAG, "--dag-run-id", "from_ctl", home=home)
        deadline = time.monotonic() + 180
        while True:
            run = one(ctl_json("dagrun", "get", DAG, "from_ctl", home=home))
            if run["state"] in ("success", "failed"):
                break
            assert time.monotonic() < deadline, f"run still {run['state']}"
            time.sleep(0.2)
        assert run["state"] == "success", run

        pools = ctl_json("pools", "list", home=home)
        assert "default_pool" in [p["name"] for p in pools], pools
        ctl("variables", "create", "--key", "from_ctl", "--value", "v", home=home)
        variables = ctl_json("variables", "list", home=home)
        assert "from_ctl" in [v["key"] for v in variables], variables
        connections = ctl_json("connections", "list", home=home)
        assert isinstance(connections, list), connections
        # (`dags get-tags` is left out: airflowctl 0.1.5 cannot print a list of
        # plain strings, whoever the server is.)
        errors = ctl_json("dags", "list-import-errors", home=home)
        assert [e["filename"] for e in errors] == ["broken.toml"], errors
        assert "version" in ctl("version", home=home).lower()
    print("ok")


main()
