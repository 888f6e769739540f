"""The layers' arrows (issue 14): services -> azgo_runtime -> azgo_core, and the operator's
azgo_tools above them all, never below: the service images carry no rich or matplotlib."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docker"))
from requirements import requirement_name, requirements  # noqa: E402

SERVICES = sorted((ROOT / "services").glob("*/src"))


def imported_packages(src: Path) -> dict[str, set[str]]:
    """{file: the top-level packages it imports} for every Python file under ``src``."""
    found = {}
    for path in sorted(src.rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def test_the_library_names_no_layer_above_it():
    src = ROOT / "libs/azgo_core/src"
    named = [str(p.relative_to(ROOT)) for p in src.rglob("*.py")
             if "azgo_runtime" in p.read_text() or "azgo_tools" in p.read_text()]
    assert not named, f"azgo_core must not know its callers: {named}"


def test_runtime_and_services_never_import_the_tools_or_their_packages():
    for src in [ROOT / "libs/azgo_runtime/src", *SERVICES]:
        for path, names in imported_packages(src).items():
            bad = names & {"azgo_tools", "rich", "matplotlib"}
            assert not bad, f"{path} imports {sorted(bad)}: that belongs in libs/azgo_tools"


def test_the_images_requirements_leave_out_the_tools_packages():
    names = {requirement_name(spec) for spec in requirements(ROOT)}
    assert {"torch", "pyzmq", "numba"} <= names  # the reader works
    assert not names & {"rich", "matplotlib", "azgo-tools"}, sorted(names)


def test_a_service_start_loads_neither_rich_nor_matplotlib():
    code = ("import sys, azgo_runtime.client, azgo_runtime.service, azgo_runtime.status, azgo_runtime.engines, "
            "azgo_broker.server, azgo_selfplay.worker, azgo_evaluator.evaluator, azgo_learner.loop; "
            "print(sorted(m for m in ('rich', 'matplotlib', 'azgo_tools') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
