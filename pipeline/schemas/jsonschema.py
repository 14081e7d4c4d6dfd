"""JSON Schema files for data teams, generated from the pydantic models.

``docs/schemas/`` holds one file per message type and version, plus
``message.schema.json`` (any message, discriminated by ``type`` and ``v``).
A test fails when the committed files differ from what the models generate.
"""

from __future__ import annotations

__all__ = ["check_schemas", "generate_schemas", "write_schemas"]

import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from pipeline.schemas.codec import MESSAGE_TYPES, Message
from pipeline.schemas.dlq import DeadLetterMetaV1

_BASE_ID = "https://edgeloop.dev/schemas/"


def generate_schemas() -> dict[str, dict[str, Any]]:
    """Return ``{file name: JSON Schema}`` for every message type and version."""
    out: dict[str, dict[str, Any]] = {}
    models = dict(MESSAGE_TYPES)
    models["dead_letter/1"] = DeadLetterMetaV1
    for tag, model in sorted(models.items()):
        type_, v = tag.split("/")
        name = f"{type_}.v{v}.schema.json"
        schema = model.model_json_schema(mode="validation")
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": _BASE_ID + name,
            **schema,
        }
        out[name] = schema
    union = TypeAdapter(Message).json_schema(mode="validation")
    union = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": _BASE_ID + "message.schema.json",
        "title": "edgeloop message",
        "description": "Any edgeloop message; the pair (type, v) selects the schema.",
        **union,
    }
    out["message.schema.json"] = union
    return out


def _render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_schemas(directory: Path) -> list[Path]:
    """Write every schema file into ``directory``; remove stale ``*.schema.json`` files."""
    directory.mkdir(parents=True, exist_ok=True)
    schemas = generate_schemas()
    written = []
    for name, schema in schemas.items():
        path = directory / name
        path.write_text(_render(schema))
        written.append(path)
    for old in directory.glob("*.schema.json"):
        if old.name not in schemas:
            old.unlink()
    return written


def check_schemas(directory: Path) -> list[str]:
    """Return the problems that make the committed files differ from the models."""
    problems = []
    schemas = generate_schemas()
    for name, schema in schemas.items():
        path = directory / name
        if not path.exists():
            problems.append(f"{path}: missing")
        elif path.read_text() != _render(schema):
            problems.append(f"{path}: stale")
    for old in directory.glob("*.schema.json"):
        if old.name not in schemas:
            problems.append(f"{old}: no longer generated")
    return problems
