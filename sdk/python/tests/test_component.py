"""The component side on plain CPython: the WIT the package carries, and the
glue in `_component` checked against the bindings componentize-py generates
from that WIT (their imports only raise here, their types are the real ones)."""

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

import aileron
from aileron import Branch, Context, Failed, Fatal, Reschedule, Skip, SkipDownstream, TaskInfo, operator
from aileron import _run

WIT = Path(aileron.__file__).parent / "wit"
REPO_WIT = Path(__file__).resolve().parents[3] / "wit" / "operator.wit"


def test_the_operator_wit_is_the_repositorys_own_file():
    link = WIT / "deps" / "operator" / "operator.wit"
    assert link.is_symlink()
    assert link.resolve() == REPO_WIT.resolve()
    name, version = re.search(r"^package (\S+)@(\S+);", link.read_text(), re.M).groups()
    assert f"include {name}/operator@{version};" in (WIT / "world.wit").read_text()


def test_the_world_imports_the_wasi_http_version_the_wit_deps_hold():
    version = re.search(r"^package wasi:http@(\S+);", (WIT / "deps/http/http.wit").read_text(), re.M).group(1)
    assert f"import wasi:http/outgoing-handler@{version};" in (WIT / "world.wit").read_text()
    for package in ("http", "io", "clocks", "random", "cli", "filesystem", "sockets"):
        assert list((WIT / "deps" / package).glob("*.wit")), package


def test_importing_the_sdk_on_cpython_loads_no_bindings():
    assert "wit_world" not in sys.modules
    assert "aileron._component" not in sys.modules


def _componentize_py():
    beside = Path(sys.executable).parent / "componentize-py"
    return str(beside) if beside.exists() else shutil.which("componentize-py")


@pytest.fixture(scope="module")
def component(tmp_path_factory):
    tool = _componentize_py()
    if tool is None:
        pytest.skip("componentize-py is not installed")
    out = tmp_path_factory.mktemp("bindings")
    subprocess.run([tool, "-d", str(WIT), "-w", "operator", "bindings", str(out)], check=True)
    sys.path.insert(0, str(out))
    root = logging.getLogger()
    level = root.level
    try:
        from aileron import _component

        yield _component
    finally:
        # `export` routes `logging` for good, as a component's process wants.
        _run.unroute_logging()
        root.setLevel(level)
        sys.path.remove(str(out))
        for name in list(sys.modules):
            if name.startswith(("wit_world", "componentize_py", "aileron._component")):
                del sys.modules[name]


def test_export_defines_witworld_whose_describe_reports_the_operator(component):
    module = types.ModuleType("my_operator")

    @operator(name="greet", version="0.2.0", description="Greets.")
    def greet(ctx: Context, params: dict) -> None:
        return None

    component.export(greet, module)
    info = module.WitWorld().describe()
    assert (info.name, info.version, info.description) == ("greet", "0.2.0", "Greets.")
    assert json.loads(info.params_schema) == {"type": "object"}

    with pytest.raises(RuntimeError, match="defines operators greet and greet; a component holds one operator"):
        component.export(greet, module)


def test_export_warms_up_without_calling_the_operator_and_routes_logging(component):
    module = types.ModuleType("counted")
    calls = []

    @operator(name="counted", version="0.1.0")
    def counted(ctx: Context) -> None:
        calls.append(ctx)
        logging.getLogger("x").info("from the operator")

    component.export(counted, module)
    assert calls == []
    handler = _run._ROUTED.handler
    assert handler is not None and handler.ctx is None
    # A try's `logging` reaches its own log, and only while it runs.
    lines = []

    class Recording(component.WitHost):
        def log(self, level, message):
            lines.append((level, message))

    ctx = Context(TaskInfo(dag_id="d", run_id="r", task_id="t"), Recording())
    assert _run.run_try(counted, ctx, "{}") == _run.Returned(None)
    assert lines == [("info", "x: from the operator")]
    assert handler.ctx is None
    logging.getLogger("x").info("after the try")
    assert len(lines) == 1


def test_endings_map_to_the_wit_outcome_and_task_error(component):
    from aileron._run import Returned
    from wit_world.imports import aileron_operator_types as wit
    from componentize_py_types import Err

    assert component._to_wit(Returned('{"a":1}')) == wit.Outcome_Success('{"a":1}')
    assert component._to_wit(Returned(None)) == wit.Outcome_Success(None)
    assert component._to_wit(Skip("no data")) == wit.Outcome_Skip("no data")
    assert component._to_wit(Branch(["a", "b"])) == wit.Outcome_Branch(["a", "b"])
    assert component._to_wit(Reschedule(30)) == wit.Outcome_Reschedule(30)
    assert component._to_wit(SkipDownstream()) == wit.Outcome_SkipDownstream(wit.SkipScope.DIRECT)
    assert component._to_wit(SkipDownstream(all=True)) == wit.Outcome_SkipDownstream(wit.SkipScope.ALL)
    with pytest.raises(Err) as failed:
        component._to_wit(Failed("busy"))
    assert failed.value.value == wit.TaskError_Failed("busy")
    with pytest.raises(Err) as fatal:
        component._to_wit(Fatal("bad input"))
    assert fatal.value.value == wit.TaskError_Fatal("bad input")


def test_wasi_http_error_codes_read_as_their_wit_names(component):
    from wit_world.imports import wasi_http_types as http

    assert component._case_name(http.ErrorCode_HttpRequestDenied()) == "HTTP-request-denied"
    assert component._case_name(http.ErrorCode_DestinationIpProhibited()) == "destination-IP-prohibited"
    error = component._refusal("GET", "http://x/", http.ErrorCode_DnsError(http.DnsErrorPayload("NXDOMAIN", None)))
    assert (error.code, error.reason) == ("DNS-error", "the name did not resolve (rcode=NXDOMAIN)")


def test_the_build_helper_reads_the_module_from_pyproject(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    sdk_dir = str(Path(aileron.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": sdk_dir}
    run = subprocess.run(
        [sys.executable, "-m", "aileron", "build"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert run.returncode != 0
    assert "[tool.aileron] module" in run.stderr
