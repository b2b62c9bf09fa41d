"""`python -m aileron build`: builds the operator project in the current
directory into a component, with the module its `pyproject.toml` names.

It runs exactly one command, and prints it first, so the build can be written
out by hand as well:

    componentize-py componentize MODULE -p . -p SDK_DIR -o OUTPUT

`[tool.aileron]` in `pyproject.toml`: `module` (required), the module that
defines the `@operator` function; `output`, the component's path (default
`MODULE.wasm`).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tomllib


def _componentize_py() -> str:
    # Prefer the one installed beside this Python (the project's virtualenv).
    beside = os.path.join(os.path.dirname(sys.executable), "componentize-py")
    found = beside if os.path.exists(beside) else shutil.which("componentize-py")
    if found is None:
        sys.exit("componentize-py is not installed: pip install componentize-py==0.25.1")
    return found


def build(project: str, output: str | None) -> int:
    try:
        with open(os.path.join(project, "pyproject.toml"), "rb") as file:
            config = tomllib.load(file).get("tool", {}).get("aileron", {})
    except FileNotFoundError:
        sys.exit(f"no pyproject.toml in {os.path.abspath(project)}")
    module = config.get("module")
    if not module:
        sys.exit("pyproject.toml needs [tool.aileron] module = \"<the module with the @operator>\"")
    output = output or config.get("output") or f"{module}.wasm"
    # The directory holding the `aileron` package: componentize-py finds the
    # package's WIT through its `componentize-py.toml` there.
    sdk_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    command = [
        _componentize_py(),
        "componentize",
        module,
        "-p",
        project,
        "-p",
        sdk_dir,
        "-o",
        output,
    ]
    print("$", shlex.join(command), flush=True)
    return subprocess.call(command)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m aileron")
    commands = parser.add_subparsers(dest="command", required=True)
    build_command = commands.add_parser("build", help="build the operator in this directory")
    build_command.add_argument("-o", "--output", help="the component's path")
    args = parser.parse_args()
    return build(".", args.output)


if __name__ == "__main__":
    sys.exit(main())
