"""Load a YAML config file into a frozen pydantic model, reporting every problem.

Two ways to keep secrets out of files:

* ``${NAME}`` or ``${NAME:-default}`` inside any string value is replaced by the
  environment variable ``NAME``;
* ``{PREFIX}SECTION__FIELD=value`` in the environment overrides ``section.field``
  (the prefix is per service, e.g. ``EDGELOOP_BRIDGE__``); the value is parsed as YAML.

Errors name the file, the line, the dotted path inside the file, and the fix.
"""

from __future__ import annotations

__all__ = ["load_config", "parse_config", "read_config_text", "validate_config_file"]

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from pipeline.errors import ConfigError, ConfigProblem

M = TypeVar("M", bound=BaseModel)
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
Path_ = tuple[str | int, ...]


def _line_map(node: yaml.Node, path: Path_, out: dict[Path_, int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            k = key.value if isinstance(key, yaml.ScalarNode) else str(key)
            out[(*path, k)] = key.start_mark.line + 1
            _line_map(value, (*path, k), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, (*path, i), out)


def _strip_tags(data: Any, loc: Path_) -> Path_:
    """``loc`` without the tags pydantic inserts for discriminated unions."""
    out: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict):
            tagged = part in (node.get("type"), node.get("kind"))
            if part not in node and isinstance(part, str) and tagged:
                continue  # the union tag, not a key of the file
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
        out.append(part)
    return tuple(out)


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _substitute(
    obj: Any, env: Mapping[str, str], path: Path_, problems: list[tuple[Path_, str]]
) -> Any:
    if isinstance(obj, dict):
        return {k: _substitute(v, env, (*path, k), problems) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_substitute(v, env, (*path, i), problems) for i, v in enumerate(obj)]
    if isinstance(obj, str):

        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(
                (
                    path,
                    f"environment variable {name} is not set (export it, or write "
                    f"${{{name}:-default}})",
                )
            )
            return ""

        return _VAR.sub(repl, obj)
    return obj


def _apply_overrides(data: dict[str, Any], env: Mapping[str, str], prefix: str | None) -> list[str]:
    applied: list[str] = []
    if not prefix:
        return applied
    for name, raw in sorted(env.items()):
        if not name.startswith(prefix) or name == prefix:
            continue
        keys = [k.lower() for k in name[len(prefix) :].split("__") if k]
        node = data
        for key in keys[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        node[keys[-1]] = yaml.safe_load(raw) if raw else raw
        applied.append(name)
    return applied


def parse_config(
    text: str,
    model: type[M],
    *,
    source: str = "<string>",
    env: Mapping[str, str] | None = None,
    env_prefix: str | None = None,
) -> M:
    """Parse YAML text into ``model``.

    Raises:
        ConfigError: listing every problem with file, line and path.
    """
    env = os.environ if env is None else env
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(
            source, [ConfigProblem("", f"not valid YAML: {getattr(exc, 'problem', exc)}", line)]
        ) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            source, [ConfigProblem("", f"must be a mapping of settings, got {type(data).__name__}")]
        )
    lines: dict[Path_, int] = {}
    if root is not None:
        _line_map(root, (), lines)
    subst_problems: list[tuple[Path_, str]] = []
    data = _substitute(data, env, (), subst_problems)
    _apply_overrides(data, env, env_prefix)
    problems = [ConfigProblem(_dotted(p), msg, lines.get(p)) for p, msg in subst_problems]
    try:
        result = model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            # Pydantic adds the union tag to the location of tagged unions; drop it
            # when it is not a key of the file.
            loc: Path_ = _strip_tags(data, tuple(err["loc"]))
            line = None
            for cut in range(len(loc), -1, -1):
                if loc[:cut] in lines:
                    line = lines[loc[:cut]]
                    break
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                allowed = _allowed_keys(model, loc[:-1])
                msg = "unknown setting" + (
                    f"; allowed here: {', '.join(allowed)}" if allowed else ""
                )
            elif err["type"] == "missing":
                msg = "required setting is missing"
            problems.append(ConfigProblem(_dotted(loc), msg, line))
        raise ConfigError(source, problems) from exc
    if problems:
        raise ConfigError(source, problems)
    return result


def _allowed_keys(model: type[BaseModel], loc: Path_) -> list[str]:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        current = _model_of(field.annotation)
        if current is None:
            return []
    return sorted(getattr(current, "model_fields", {}))


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def read_config_text(
    path: str | os.PathLike[str], *, hint: str = "pass the path of an existing file"
) -> str:
    """The text of a config file, or a :class:`ConfigError` naming it.

    Raises:
        ConfigError: the file is missing (with ``hint``) or cannot be read as UTF-8.
    """
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(str(p), [ConfigProblem("", "file not found")], hint=hint) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(p), [ConfigProblem("", f"cannot read: {exc}")]) from exc


def load_config(
    path: str | os.PathLike[str],
    model: type[M],
    *,
    env: Mapping[str, str] | None = None,
    env_prefix: str | None = None,
) -> M:
    """Read and validate a YAML config file.

    Raises:
        ConfigError: if the file is missing, unreadable or invalid.
    """
    text = read_config_text(
        path, hint="pass the path of an existing file; examples are in configs/"
    )
    return parse_config(text, model, source=str(path), env=env, env_prefix=env_prefix)


def validate_config_file(path: str | os.PathLike[str], model: type[BaseModel]) -> list[str]:
    """Return every problem of a config file as printable lines (empty when valid)."""
    try:
        load_config(path, model)
    except ConfigError as exc:
        return [p.render(exc.file) for p in exc.problems]
    return []
