"""azgo_core's public API: every name in ``__all__`` resolves to its one home, lazily."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import azgo_core

SRC = Path(azgo_core.__file__).parent


def test_every_public_name_resolves_to_the_module_that_owns_it():
    for name in azgo_core.__all__:
        value = getattr(azgo_core, name)
        if name != "__version__":
            module = azgo_core._PUBLIC[name]
            assert getattr(__import__(f"azgo_core.{module}", fromlist=[name]), name) is value, name
    assert "Position" in dir(azgo_core)
    try:
        azgo_core.NoSuchName  # noqa: B018
    except AttributeError as e:
        assert "NoSuchName" in str(e)
    else:
        raise AssertionError("an unknown name must raise AttributeError")


def test_importing_the_package_or_its_config_loads_neither_torch_nor_numba():
    code = ("import sys, azgo_core, azgo_core.config, azgo_core.protocol; "
            "print(sorted(m for m in ('torch', 'numba') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_no_module_imports_another_modules_private_names():
    for path in sorted(SRC.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("azgo_core")):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                assert not private, f"{path.name} imports private {private} from {node.module}"
