"""Drives an Aileron server through Airflow's own Python client for /api/v1
(apache-airflow-client 2.x), with basic auth, as an Airflow 2 user's script
would, asserting what each call answers. Run by `tests/it/airflow_clients.rs`:

    python airflow_v2.py URL USERNAME PASSWORD

The server holds DAG `client_dag` (task `greet`, an echo of the run's conf
`greeting`, and `fan`, mapped over two messages) and a DAG file that does
not parse. The client checks every
response against Airflow 2's schemas, so a field of the wrong type fails here.
"""

import sys
import time

import airflow_client.client as af
from airflow_client.client.api import (
    dag_api,
    dag_run_api,
    import_error_api,
    monitoring_api,
    task_instance_api,
    variable_api,
    x_com_api,
)
from airflow_client.client.exceptions import ApiException, NotFoundException
from airflow_client.client.model.clear_task_instances import ClearTaskInstances
from airflow_client.client.model.dag import DAG as DagBody
from airflow_client.client.model.dag_run import DAGRun
from airflow_client.client.model.variable import Variable

URL, USER, PASSWORD = sys.argv[1:4]
DAG = "client_dag"


def main() -> None:
    config = af.Configuration(host=f"{URL}/api/v1", username=USER, password=PASSWORD)
    with af.ApiClient(config) as client:
        health = monitoring_api.MonitoringApi(client).get_health()
        assert health.metadatabase.status.value == "healthy", health
        assert monitoring_api.MonitoringApi(client).get_version().version

        dags = dag_api.DAGApi(client)
        listed = dags.get_dags(tags=["clients"], limit=10)
        assert [d.dag_id for d in listed.dags] == [DAG], listed
        assert dags.get_dags(dag_id_pattern="nothing-is-called-this").total_entries == 0
        dag = dags.get_dag(DAG)
        assert dag.tags[0].name == "clients", dag
        details = dags.get_dag_details(DAG)
        assert details.catchup is False and details.timezone and details.file_token, details
        tasks = dags.get_tasks(DAG)
        assert [(t.task_id, t.is_mapped) for t in tasks.tasks] == [("fan", True), ("greet", False)], tasks
        greet = dags.get_task(DAG, "greet")
        assert (greet.trigger_rule.value, greet.retries, greet.class_ref.class_name) == (
            "all_success",
            0,
            "echo",
        ), greet
        unpaused = dags.patch_dag(DAG, DagBody(is_paused=False), update_mask=["is_paused"])
        assert unpaused.is_paused is False

        runs = dag_run_api.DAGRunApi(client)
        run = runs.post_dag_run(DAG, DAGRun(dag_run_id="from_client", conf={"greeting": "hi"}))
        assert (run.dag_run_id, run.run_type) == ("from_client", "manual"), run
        deadline = time.monotonic() + 180
        while run.state.value not in ("success", "failed"):
            assert time.monotonic() < deadline, f"run still {run.state}"
            time.sleep(0.2)
            run = runs.get_dag_run(DAG, "from_client")
        assert run.state.value == "success", run
        # Airflow's list filters repeat the parameter.
        listed_runs = runs.get_dag_runs(DAG, state=["success", "failed"], order_by="-execution_date")
        assert [r.dag_run_id for r in listed_runs.dag_runs] == ["from_client"]

        tis = task_instance_api.TaskInstanceApi(client)
        instances = tis.get_task_instances(DAG, "from_client", state=["success", "failed"])
        assert sorted((t.task_id, t.map_index, t.state.value) for t in instances.task_instances) == [
            ("fan", 0, "success"),
            ("fan", 1, "success"),
            ("greet", -1, "success"),
        ], instances
        assert all(isinstance(t.rendered_fields, dict) for t in instances.task_instances)
        ti = tis.get_task_instance(DAG, "from_client", "greet")
        assert (ti.try_number, ti.max_tries) == (1, 0), ti
        log = tis.get_log(DAG, "from_client", "greet", 1, full_content=True)
        assert "hello hi" in log.content, log

        xcom = x_com_api.XComApi(client).get_xcom_entry(DAG, "from_client", "greet", "return_value")
        assert "hello hi" in xcom.value, xcom

        variables = variable_api.VariableApi(client)
        created = variables.post_variables(Variable(key="from_v1_client", value="v1"))
        assert (created.key, created.value) == ("from_v1_client", "v1")
        assert variables.get_variable("from_v1_client").value == "v1"

        # Airflow 2 scripts send its other options too; those Aileron does as
        # Airflow does are taken, those it cannot do are refused by name.
        cleared = dags.post_clear_task_instances(
            DAG,
            ClearTaskInstances(
                dry_run=True,
                dag_run_id="from_client",
                task_ids=["greet"],
                only_failed=False,
                reset_dag_runs=True,
                include_subdags=False,
                include_parentdag=False,
            ),
        )
        assert [t.task_id for t in cleared.task_instances] == ["greet"], cleared
        assert tis.get_task_instance(DAG, "from_client", "greet").state.value == "success"
        try:
            dags.post_clear_task_instances(
                DAG, ClearTaskInstances(dry_run=True, dag_run_id="from_client", include_past=True)
            )
            raise AssertionError("include_past was taken")
        except ApiException as error:
            assert error.status == 400 and "include_past" in error.body, error

        errors = import_error_api.ImportErrorApi(client).get_import_errors()
        assert [e.filename for e in errors.import_errors] == ["broken.toml"], errors

        try:
            dags.get_dag("no_such_dag")
            raise AssertionError("a missing DAG was found")
        except NotFoundException as error:
            assert error.status == 404, error
        try:
            runs.post_dag_run(DAG, DAGRun(dag_run_id="from_client"))
            raise AssertionError("a second run with the same id was created")
        except ApiException as error:
            assert error.status == 409, error
    print("ok")


main()
