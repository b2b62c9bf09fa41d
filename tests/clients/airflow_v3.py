"""Drives an Aileron server through Airflow's own Python client for /api/v2
(apache-airflow-client 3.x), as an Airflow user's script would, asserting what
each call answers. Run by `tests/it/airflow_clients.rs`:

    python airflow_v3.py URL USERNAME PASSWORD

The server holds DAG `client_dag` (task `greet`, an echo of the run's conf
`greeting`, and `fan`, mapped over two messages) and a DAG file that does
not parse.
"""

import json
import sys
import time
import urllib.request

import airflow_client.client as af
from airflow_client.client.api import (
    dag_api,
    dag_run_api,
    dag_source_api,
    dag_stats_api,
    dag_version_api,
    import_error_api,
    monitor_api,
    task_api,
    task_instance_api,
    variable_api,
    version_api,
    x_com_api,
)
from airflow_client.client.exceptions import ApiException
from airflow_client.client.models import (
    ClearTaskInstancesBody,
    ClearTaskInstancesBodyTaskIdsInner,
    DAGPatchBody,
    DAGRunsBatchBody,
    PatchTaskInstanceBody,
    TaskInstancesBatchBody,
    TriggerDAGRunPostBody,
    VariableBody,
)

URL, USER, PASSWORD = sys.argv[1:4]
DAG = "client_dag"


def token() -> str:
    request = urllib.request.Request(
        f"{URL}/auth/token",
        data=json.dumps({"username": USER, "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request) as response:
        assert response.status == 201, response.status
        return json.load(response)["access_token"]


def main() -> None:
    config = af.Configuration(host=URL, access_token=token())
    with af.ApiClient(config) as client:
        health = monitor_api.MonitorApi(client).get_health()
        assert health.metadatabase.status == "healthy", health
        assert version_api.VersionApi(client).get_version().version

        dags = dag_api.DAGApi(client)
        listed = dags.get_dags(tags=["clients", "nothing-has-this"], limit=10)
        assert [d.dag_id for d in listed.dags] == [DAG], listed
        assert listed.total_entries == 1
        assert dags.get_dags(tags=["clients", "nothing-has-this"], tags_match_mode="all").dags == []
        assert dags.get_dags(dag_id_pattern="client%").total_entries == 1
        dag = dags.get_dag(DAG)
        assert dag.tags[0].name == "clients" and not dag.is_stale
        details = dags.get_dag_details(DAG)
        assert details.catchup is False and details.timezone
        unpaused = dags.patch_dag(DAG, DAGPatchBody(is_paused=False))
        assert unpaused.is_paused is False
        paused_all = dags.patch_dags(DAGPatchBody(is_paused=True), dag_id_pattern="daily%")
        assert [(d.dag_id, d.is_paused) for d in paused_all.dags] == [("daily_dag", True)], paused_all
        dags.patch_dags(DAGPatchBody(is_paused=False), dag_id_pattern="daily%")

        runs = dag_run_api.DagRunApi(client)
        run = runs.trigger_dag_run(
            DAG,
            TriggerDAGRunPostBody(dag_run_id="from_client", logical_date=None, conf={"greeting": "hi"}),
        )
        assert (run.dag_run_id, run.run_type) == ("from_client", "manual"), run
        deadline = time.monotonic() + 180
        while run.state not in ("success", "failed"):
            assert time.monotonic() < deadline, f"run still {run.state}"
            time.sleep(0.2)
            run = runs.get_dag_run(DAG, "from_client")
        assert run.state == "success", run
        listed_runs = runs.get_dag_runs(DAG, state=["success", "failed"], order_by=["-logical_date"])
        assert [r.dag_run_id for r in listed_runs.dag_runs] == ["from_client"]
        found = runs.get_list_dag_runs_batch("~", DAGRunsBatchBody(dag_ids=[DAG], states=["success"]))
        assert [r.dag_run_id for r in found.dag_runs] == ["from_client"], found
        none = runs.get_list_dag_runs_batch("~", DAGRunsBatchBody(dag_ids=[DAG], duration_gt=3600))
        assert none.total_entries == 0, none

        stats = dag_stats_api.DagStatsApi(client).get_dag_stats(dag_ids=[DAG])
        counts = {s.state: s.count for s in stats.dags[0].stats}
        assert counts["success"] == 1 and counts["failed"] == 0, stats
        versions = dag_version_api.DagVersionApi(client).get_dag_versions(DAG)
        assert [v.version_number for v in versions.dag_versions] == [1], versions
        assert run.dag_versions[0].version_number == 1, run
        source = dag_source_api.DagSourceApi(client).get_dag_source(DAG)
        assert "[tasks.greet]" in source.content and source.version_number == 1, source
        tasks = task_api.TaskApi(client).get_tasks(DAG)
        assert [t.task_id for t in tasks.tasks] == ["fan", "greet"], tasks

        tis = task_instance_api.TaskInstanceApi(client)
        instances = tis.get_task_instances(DAG, "from_client")
        assert sorted((t.task_id, t.map_index, t.state) for t in instances.task_instances) == [
            ("fan", 0, "success"),
            ("fan", 1, "success"),
            ("greet", -1, "success"),
        ], instances
        fans = tis.get_task_instances_batch(
            "~", "~", TaskInstancesBatchBody(dag_ids=[DAG], task_ids=["fan"], order_by="-map_index")
        )
        assert [t.map_index for t in fans.task_instances] == [1, 0], fans
        would = tis.patch_task_instance_dry_run(DAG, "from_client", "fan", PatchTaskInstanceBody(new_state="failed"))
        assert sorted(t.map_index for t in would.task_instances) == [0, 1], would
        assert tis.get_task_instance_dependencies(DAG, "from_client", "greet").dependencies == []
        ti = tis.get_task_instance(DAG, "from_client", "greet")
        assert (ti.try_number, ti.max_tries) == (1, 0), ti
        assert ti.dag_version.version_number == 1, ti
        log = tis.get_log(DAG, "from_client", "greet", 1)
        events = [entry.actual_instance.event if hasattr(entry, "actual_instance") else entry for entry in log.content]
        assert any("hello hi" in str(e) for e in events), events

        # One of two shapes (native value, or stringified): the client wraps it.
        xcom = x_com_api.XComApi(client).get_xcom_entry(DAG, "greet", "from_client", "return_value")
        assert xcom.actual_instance.value == "hello hi", xcom

        variables = variable_api.VariableApi(client)
        created = variables.post_variable(VariableBody(key="from_client", value="v1"))
        assert (created.key, created.value) == ("from_client", "v1")
        assert variables.get_variable("from_client").value == "v1"

        cleared = tis.post_clear_task_instances(
            DAG,
            ClearTaskInstancesBody(
                dry_run=True,
                dag_run_id="from_client",
                task_ids=[ClearTaskInstancesBodyTaskIdsInner("greet")],
                only_failed=False,
            ),
        )
        assert [t.task_id for t in cleared.task_instances] == ["greet"]
        assert tis.get_task_instance(DAG, "from_client", "greet").state == "success"

        errors = import_error_api.ImportErrorApi(client).get_import_errors()
        assert [e.filename for e in errors.import_errors] == ["broken.toml"], errors

        try:
            dags.get_dag("no_such_dag")
            raise AssertionError("a missing DAG was found")
        except ApiException as error:
            assert error.status == 404 and json.loads(error.body)["detail"], error
        try:
            runs.trigger_dag_run(DAG, TriggerDAGRunPostBody(dag_run_id="from_client", logical_date=None))
            raise AssertionError("a second run with the same id was created")
        except ApiException as error:
            assert error.status == 409, error
    print("ok")


main()
