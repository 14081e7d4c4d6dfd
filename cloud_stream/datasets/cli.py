"""``edgeloop datasets snapshot|list|show|import-corrections|stats``.

The dataset comes from the ``datasets:`` section of a cloud worker YAML
(``--config``), or from ``--root``/``--name``; ``--root``/``--name`` override the file.
"""

from __future__ import annotations

__all__ = ["ENV_PREFIX", "load_dataset_config", "register"]

import argparse
import json
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from cloud_stream.datasets.config import DatasetConfig
from cloud_stream.datasets.corrections import import_corrections
from cloud_stream.datasets.snapshot import (
    SPLITS,
    DatasetVersion,
    list_versions,
    load_version,
    pool_stats,
    snapshot,
)
from pipeline.config.loader import load_config

#: Environment overrides of the cloud worker file, e.g. EDGELOOP_CLOUD__DATASETS__ROOT.
ENV_PREFIX = "EDGELOOP_CLOUD__"


class _WorkerFile(BaseModel):
    """The part of a cloud worker YAML this command reads; other sections are not ours."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    datasets: DatasetConfig = Field(default_factory=DatasetConfig)


def load_dataset_config(
    path: str | os.PathLike[str] | None, *, root: str | None = None, name: str | None = None
) -> DatasetConfig:
    """The ``datasets:`` section of a worker YAML (defaults without a file), with overrides.

    Raises:
        ConfigError: the file is missing or its ``datasets`` section is invalid
            (file, line and path of every problem).
    """
    config = (
        load_config(path, _WorkerFile, env_prefix=ENV_PREFIX).datasets
        if path is not None
        else DatasetConfig()
    )
    update = {k: v for k, v in (("root", root), ("name", name)) if v is not None}
    return DatasetConfig.model_validate({**config.model_dump(), **update}) if update else config


def register(parser: argparse.ArgumentParser) -> None:
    """Add the subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="cloud worker YAML (its datasets: section)")
    common.add_argument("--root", help="datasets folder or fsspec URL (default data/datasets)")
    common.add_argument("--name", help="dataset name (default conveyor)")
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON")

    sub = parser.add_subparsers(dest="action", required=True)
    snap = sub.add_parser("snapshot", parents=[common], help="freeze the pool into a new version")
    snap.add_argument("--note", default="", help="free text stored in the manifest")
    snap.set_defaults(func=_snapshot)
    lst = sub.add_parser("list", parents=[common, as_json], help="list the versions")
    lst.set_defaults(func=_list)
    show = sub.add_parser("show", parents=[common, as_json], help="per-class counts of a version")
    show.add_argument("version", help="v0003, 3 or latest")
    show.set_defaults(func=_show)
    imp = sub.add_parser(
        "import-corrections",
        parents=[common],
        help="import human labels (CSV id,label or JSON id -> label); they override the teacher",
    )
    imp.add_argument("file", type=Path, help="CSV or JSON file")
    imp.add_argument(
        "--skip-unknown", action="store_true", help="import known ids, report ids not in the pool"
    )
    imp.set_defaults(func=_import)
    stats = sub.add_parser("stats", parents=[common, as_json], help="pool size per label, reason")
    stats.set_defaults(func=_stats)


def _config(args: argparse.Namespace) -> DatasetConfig:
    return load_dataset_config(args.config, root=args.root, name=args.name)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [header, ["-" * w for w in widths], *rows]
    return "\n".join(
        "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in lines
    )


def _summary(v: DatasetVersion) -> dict[str, object]:
    return v.model_dump(exclude={"samples", "duplicates"}) | {"location": v.location}


def _snapshot(args: argparse.Namespace) -> int:
    v = snapshot(_config(args), note=args.note)
    splits = ", ".join(f"{s} {sum(v.counts[s].values())}" for s in SPLITS)
    print(
        f"{v.version}: {v.total} samples ({splits}); {v.duplicates_removed} duplicates removed, "
        f"{v.corrections_applied} human labels\n{v.location}"
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    versions = list_versions(_config(args))
    if args.json:
        print(json.dumps([_summary(v) for v in versions], indent=1))
        return 0
    if not versions:
        print("no versions yet (edgeloop datasets snapshot)")
        return 0
    rows = [
        [
            v.version,
            v.created,
            str(v.total),
            *(str(sum(v.counts[s].values())) for s in SPLITS),
            str(v.duplicates_removed),
            str(v.corrections_applied),
            v.note,
        ]
        for v in versions
    ]
    header = ["version", "created", "total", *SPLITS, "dups", "human", "note"]
    print(_table(header, rows))
    return 0


def _show(args: argparse.Namespace) -> int:
    v = load_version(_config(args), args.version)
    if args.json:
        print(json.dumps(_summary(v), indent=1))
        return 0
    rows = []
    for label in v.labels:
        per_split = [v.counts[s].get(label, 0) for s in SPLITS]
        rows.append([label, *(str(n) for n in per_split), str(sum(per_split))])
    rows.append(["total", *(str(sum(v.counts[s].values())) for s in SPLITS), str(v.total)])
    print(f"{v.version} of {v.name}, created {v.created}, parent {v.parent or '-'}")
    if v.note:
        print(f"note: {v.note}")
    print(_table(["label", *SPLITS, "total"], rows))
    print(
        f"pool {v.pool_size}, duplicates removed {v.duplicates_removed}, "
        f"human labels {v.corrections_applied}\n{v.location}"
    )
    return 0


def _import(args: argparse.Namespace) -> int:
    report = import_corrections(_config(args), args.file, skip_unknown=args.skip_unknown)
    for line in report.unknown:
        print(f"skipped, not in the pool: {line}")
    print(f"{report.stored} corrections imported from {report.file}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    stats = pool_stats(_config(args))
    if args.json:
        print(json.dumps(stats.model_dump(), indent=1))
        return 0
    print(f"pool: {stats.total} samples, {stats.corrected} with a human label")
    for title, counts in (("label", stats.by_label), ("reason", stats.by_reason)):
        if counts:
            print()
            print(_table([title, "samples"], [[k, str(n)] for k, n in counts.items()]))
    return 0
