"""The documentation's commands, settings and links exist: README.md and docs/ cannot drift from the code.

Running every documented command is what the rest of the suite does (make run, compose, deploy,
matches...); this checks what a reader copies: each `make TARGET` is a target of the Makefile,
each `azgo COMMAND --option` is accepted by the command line, each AZGO_SECTION__FIELD names a
setting, and each relative link (with its #anchor) leads to a file and heading that exist.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from azgo_core.config import Settings
from azgo_tools.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted([REPO / "README.md", *(REPO / "docs").rglob("*.md")])


def code_of(text: str) -> list[str]:
    """Every fenced block's lines and every inline code span of a markdown text."""
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.S | re.M)
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.S | re.M)
    return [line for block in fenced for line in block.splitlines()] + re.findall(r"`([^`\n]+)`", prose)


def make_targets() -> set[str]:
    targets = set()
    for path in [REPO / "Makefile", *(REPO / "mk").glob("*.mk")]:
        for line in path.read_text(encoding="utf-8").splitlines():
            m = re.match(r"^([A-Za-z0-9_ .$()/-]+?)\s*:(?!=)", line)
            if m and not line.startswith("\t"):
                targets.update(t for t in m.group(1).split() if re.fullmatch(r"[a-z][a-z0-9-]*", t))
    return targets


def github_anchor(heading: str) -> str:
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
    return {github_anchor(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


@pytest.fixture(scope="module")
def code() -> dict[Path, list[str]]:
    return {path: code_of(path.read_text(encoding="utf-8")) for path in DOCS}


def test_the_docs_are_found():
    names = {p.relative_to(REPO).as_posix() for p in DOCS}
    assert {"README.md", "docs/config-reference.md", "docs/run.md", "docs/results/README.md"} <= names


def test_every_make_target_in_the_docs_exists(code):
    targets = make_targets()
    assert {"run", "test", "status", "match", "deploy", "bench-core", "docs"} <= targets
    missing = set()
    for path, lines in code.items():
        for line in lines:
            for command in re.split(r"&&|;|\|\||\(", line.split("#")[0]):
                words = command.split()
                while words and (words[0] == "$" or "=" in words[0]):  # a prompt, VAR=value before the command
                    words.pop(0)
                if words[:1] != ["make"]:
                    continue
                args = [w for w in words[1:] if "=" not in w and not w.startswith("-")]
                if args and re.fullmatch(r"[a-z][a-z0-9-]*", args[0]) and args[0] not in targets:
                    missing.add(f"{path.relative_to(REPO)}: make {args[0]}")
    assert not missing, f"make targets the docs name that no Makefile defines: {sorted(missing)}"


def test_every_azgo_command_and_option_in_the_docs_exists(code):
    commands = build_parser()._subparsers._group_actions[0].choices  # name -> its ArgumentParser
    assert {"run", "config", "match", "strength", "status", "gtp", "report", "deploy"} <= set(commands)
    wrong, seen = set(), 0
    for path, lines in code.items():
        for line in lines:
            for name, rest in re.findall(r"(?:^|[\s/'\"(])azgo ([a-z][a-z-]*)([^|;&`]*)", line):
                seen += 1
                where = f"{path.relative_to(REPO)}: azgo {name}"
                if name not in commands:
                    wrong.add(f"{where} (no such command)")
                    continue
                options = commands[name]._option_string_actions
                wrong.update(f"{where} {opt}" for opt in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest) if opt not in options)
    assert seen >= 15  # the pattern finds the documented commands (20 when this was written)
    assert not wrong, f"azgo commands or options the docs name that the command line refuses: {sorted(wrong)}"


def test_every_setting_variable_in_the_docs_names_a_setting():
    fields = {f"AZGO_{s.upper()}__{k.upper()}" for s, f in Settings.model_fields.items() for k in f.annotation.model_fields}
    wrong = set()
    for path in [*DOCS, REPO / "configs" / "azgo.yaml", REPO / "compose.yaml"]:
        for var in re.findall(r"\bAZGO_[A-Z_]+?__[A-Z_]+\b", path.read_text(encoding="utf-8")):
            if var not in fields and var != "AZGO_SECTION__FIELD":  # the docs' name for the pattern itself
                wrong.add(f"{path.relative_to(REPO)}: {var}")
    assert not wrong, f"AZGO_ variables that name no setting: {sorted(wrong)}"


def test_every_relative_link_leads_to_a_file_and_heading(code):
    broken = []
    for path in DOCS:
        text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
        text = re.sub(r"`[^`\n]+`", "", text)  # code spans: a regex's ](...) is no link
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # http:, https:, mailto:
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            if not dest.exists():
                broken.append(f"{path.relative_to(REPO)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{path.relative_to(REPO)}: {target} (no such heading)")
    assert not broken, f"broken links: {broken}"
