"""The README's project.yaml reference table, derived from the field metadata of model.py."""

from __future__ import annotations

import dataclasses
from typing import Any

from . import schema
from .model import REQUIRED, App, CertSpec, Flash, Idf, Ota, Partitions, Project, Wifi

__all__ = ["reference_rows", "reference_table"]


def reference_rows() -> list[tuple[str, str, str]]:
    """(key, default, doc) for every project.yaml key, in declaration order (the README table)."""
    rows: list[tuple[str, str, str]] = []

    def walk(cls: type[Any], prefix: str) -> None:
        for spec in dataclasses.fields(cls):
            if "check" not in spec.metadata:
                continue
            key = f"{prefix}{spec.name}"
            default = spec.metadata["default"]
            shown = "required" if default is REQUIRED else schema.yaml_text(default)
            rows.append((key, shown, spec.metadata["doc"]))
            section = _SECTIONS.get((cls, spec.name))
            if section is not None:
                walk(section, f"{key}." if section is not App else f"{key}.<name>.")

    walk(Project, "")
    return rows


_SECTIONS: dict[tuple[type[Any], str], type[Any]] = {
    (Project, "idf"): Idf,
    (Project, "flash"): Flash,
    (Project, "partitions"): Partitions,
    (Project, "apps"): App,
    (Project, "ota"): Ota,
    (Project, "wifi"): Wifi,
    (Ota, "cert"): CertSpec,
}


def reference_table() -> str:
    """The README's project.yaml reference, as a Markdown table."""
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for key, default, doc in reference_rows():
        lines.append(f"| `{key}` | {default.replace('|', '/')} | {doc.replace('|', '/')} |")
    return "\n".join(lines) + "\n"
