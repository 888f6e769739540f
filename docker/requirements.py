"""Print the third-party requirements of azgo's packages, one per line, for the images.

The union of ``[project].dependencies`` over the pyproject.toml files of the library, the
runtime and the services, without the azgo packages themselves: the images install these in
a dependency layer before any source is copied, so only a pyproject change rebuilds it.
``deploy/ci-docker.sh`` downloads the same list into the wheelhouse.

    python docker/requirements.py [ROOT]      # ROOT: the repository (default: this file's parent's parent)
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PACKAGES = ("libs/azgo_core", "libs/azgo_runtime",
            "services/broker", "services/learner", "services/selfplay", "services/evaluator")


def requirement_name(spec: str) -> str:
    """The distribution name of a requirement string, normalised (PEP 503): 'Foo_bar>=1' -> 'foo-bar'."""
    name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    if not name:
        raise ValueError(f"not a requirement: {spec!r}")
    return re.sub(r"[-_.]+", "-", name.group(1)).lower()


def requirements(root: Path) -> list[str]:
    """Sorted, de-duplicated third-party requirements of every package under ``root``."""
    found: dict[str, str] = {}
    for package in PACKAGES:
        project = tomllib.loads((root / package / "pyproject.toml").read_text())["project"]
        for spec in project.get("dependencies", []):
            name = requirement_name(spec)
            if not name.startswith("azgo-"):
                # a pinned spec ("torch==2.13.0") wins over a bare name from another package
                if name not in found or len(spec) > len(found[name]):
                    found[name] = spec.strip()
    return [found[name] for name in sorted(found)]


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
    print("\n".join(requirements(root)))
