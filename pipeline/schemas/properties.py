"""Flat string key/value form of a message, for MQTT v5 user properties and Kafka headers.

Frames travel as raw JPEG bytes, so their metadata cannot be in the payload.
Each field becomes one property. Nested models are flattened with dots
(``model.name``); scalars are plain text (numbers in decimal, booleans as
``true``/``false``), readable by any Kafka console consumer; lists and dicts are
compact JSON. Parsing back applies the same validation as for JSON payloads.
"""

from __future__ import annotations

__all__ = ["from_properties", "to_properties"]

import json
import types
import typing
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

from pipeline.errors import SchemaError
from pipeline.schemas.base import StrictModel
from pipeline.schemas.codec import MESSAGE_TYPES, format_validation_error

_MAX_PROPERTIES = 128


def _unwrap(annotation: Any) -> list[Any]:
    """The member types of ``X | None`` and ``Annotated[X, ...]``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(annotation) for m in _unwrap(a)]
    return [annotation]


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    for member in _unwrap(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            return member
    return None


def _is_container(annotation: Any) -> bool:
    return any(typing.get_origin(m) in (list, dict) for m in _unwrap(annotation))


def _flatten(model: BaseModel, prefix: str, out: list[tuple[str, str]]) -> None:
    for name in type(model).model_fields:
        value = getattr(model, name)
        key = f"{prefix}{name}"
        if value is None:
            continue
        if isinstance(value, BaseModel):
            _flatten(value, key + ".", out)
        elif isinstance(value, bool):
            out.append((key, "true" if value else "false"))
        elif isinstance(value, str):
            out.append((key, value))
        elif isinstance(value, int | float):
            out.append((key, repr(value)))
        else:
            as_json = model.model_dump(mode="json", include={name})[name]
            out.append((key, json.dumps(as_json, separators=(",", ":"))))


def to_properties(message: StrictModel) -> list[tuple[str, str]]:
    """Flatten a message into ``(key, value)`` string pairs."""
    out: list[tuple[str, str]] = []
    _flatten(message, "", out)
    return out


def _build(
    model: type[BaseModel], flat: dict[str, str], prefix: str, where: str | None
) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        nested = _nested_model(field.annotation)
        if nested is not None and any(k.startswith(key + ".") for k in flat):
            data[name] = _build(nested, flat, key + ".", where)
        elif key in flat:
            raw = flat[key]
            if _is_container(field.annotation):
                try:
                    data[name] = json.loads(raw)
                except ValueError as exc:
                    raise SchemaError(
                        "invalid", f"property {key!r} is not a JSON list or object", where=where
                    ) from exc
            else:
                data[name] = raw
    return data


def from_properties(
    pairs: Iterable[tuple[str, str | bytes]], *, where: str | None = None
) -> StrictModel:
    """Rebuild and validate a message from its properties.

    Keys that are not fields of the message (headers added by other tools) are
    ignored; every field of ours is validated strictly.

    Raises:
        SchemaError: if the pairs do not form a known, valid message.
    """
    flat: dict[str, str] = {}
    for count, (key, raw) in enumerate(pairs, 1):
        if count > _MAX_PROPERTIES:
            raise SchemaError("invalid", f"more than {_MAX_PROPERTIES} properties", where=where)
        try:
            flat[key] = raw.decode() if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as exc:
            raise SchemaError("invalid", f"property {key!r} is not UTF-8", where=where) from exc
    tag = f"{flat.get('type')}/{flat.get('v')}"
    cls = MESSAGE_TYPES.get(tag)
    if cls is None:
        raise SchemaError(
            "unknown_type",
            f"unknown message type/version {flat.get('type')!r}/{flat.get('v')!r} in properties",
            where=where,
            hint=f"known: {', '.join(sorted(MESSAGE_TYPES))}",
        )
    data = _build(cls, flat, "", where)
    # Properties are text, so validate in lax mode (numbers parsed from text); the
    # version is a Literal int that lax mode does not parse, and it matched the tag.
    data["v"] = int(flat["v"])
    try:
        return cls.model_validate(data, strict=False)
    except ValidationError as exc:
        raise SchemaError("invalid", format_validation_error(exc), where=where) from exc
