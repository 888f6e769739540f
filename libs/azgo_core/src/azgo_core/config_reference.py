"""The configuration reference (``docs/config-reference.md``), generated from the settings models.

Every field of ``azgo_core.config.Settings`` with its environment variable, type, default,
bounds and the docstring under it, section by section. ``azgo config --reference`` prints it
and ``make docs`` writes it; a test fails when the file and the models differ, so the
reference cannot drift from the code.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from .config import ENV_DELIMITER, ENV_PREFIX, Settings

HEADER = """\
# Configuration reference

Generated from the settings models (`azgo_core.config`) by `azgo config --reference`; `make docs`
rewrites this file and a test fails when it differs from the code, so edit the docstrings in
`libs/azgo_core/src/azgo_core/config.py`, not this page. How the file, the environment and the
validation work: [configuration.md](configuration.md).

Each field is set in `configs/azgo.yaml` under its section, or by the environment variable in
the second column (lists and maps as JSON).
"""


def type_name(annotation: Any) -> str:
    """A reader's name for a field's type: ``int``, ``puct | gumbel``, ``list of int``, ``float or null``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(f"`{a}`" if isinstance(a, str) else json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        names = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in args else "")
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin in (list, tuple):
        return f"list of {type_name(args[0])}"
    if origin is dict:
        return f"map of {type_name(args[0])} to {type_name(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "entries (table below)"
    return getattr(annotation, "__name__", str(annotation))


def bounds(field: FieldInfo) -> str:
    """The field's numeric bounds and pattern, e.g. ``>= 1, <= 4096``."""
    parts = []
    for m in field.metadata:
        for cls, attr, sign in ((annotated_types.Ge, "ge", ">="), (annotated_types.Gt, "gt", ">"),
                                (annotated_types.Le, "le", "<="), (annotated_types.Lt, "lt", "<")):
            if isinstance(m, cls):
                parts.append(f"{sign} {getattr(m, attr)}")
        pattern = getattr(m, "pattern", None)
        if pattern:
            parts.append(f"matches `{pattern}`")
    return ", ".join(parts)


def default_text(field: FieldInfo) -> str:
    """The default as it would be written in the YAML file."""
    if field.is_required():
        return "(required)"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        value = value.model_dump()
    return f"`{json.dumps(value)}`" if not isinstance(value, str) else f"`{value}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def section_table(name: str, model: type[BaseModel], prefix: str) -> list[str]:
    """One section's markdown table: key, environment variable, type, default, bounds, meaning."""
    rows = ["| key | environment | type | default | bounds | meaning |", "|---|---|---|---|---|---|"]
    for key, field in model.model_fields.items():
        env = f"`{prefix}{key.upper()}`" if prefix else ""
        rows.append(f"| `{name}.{key}` | {env} | {_cell(type_name(field.annotation))} | {_cell(default_text(field))} "
                    f"| {_cell(bounds(field))} | {_cell(field.description or '')} |")
    return rows


def reference_markdown() -> str:
    """The whole reference page."""
    out = [HEADER]
    for section, field in Settings.model_fields.items():
        model = field.annotation
        out += [f"## `{section}`", "", _cell(model.__doc__ or ""), ""] if model.__doc__ else [f"## `{section}`", ""]
        out += section_table(section, model, f"{ENV_PREFIX}{section.upper()}{ENV_DELIMITER}")
        out.append("")
        for key, sub in model.model_fields.items():  # nested models: the entries of distributed.workers
            inner = typing.get_args(sub.annotation)
            if inner and isinstance(inner[0], type) and issubclass(inner[0], BaseModel):
                out += [f"Each entry of `{section}.{key}`:", ""]
                out += section_table(f"{section}.{key}[]", inner[0], "")
                out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


__all__ = ["reference_markdown"]
