"""A readable summary of a dataset, for `lerobot-keyframes info`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .episodes import metadata_problems, read_episodes_meta, read_tasks
from .layout import DatasetLayout
from .source import resolve_source


def summarize(source: str | Path, *, revision: str | None = None) -> dict[str, Any]:
    """Episodes, frames, fps, cameras (codec, size, files), tasks and language columns of a dataset."""
    resolved = resolve_source(source, revision=revision)
    layout = DatasetLayout.open(resolved.root)
    meta = read_episodes_meta(layout)
    tasks = read_tasks(layout)
    lengths = meta["length"].to_pylist()
    cameras = []
    for cam in layout.cameras:
        entry: dict[str, Any] = {
            "key": cam.key,
            "storage": cam.storage,
            "codec": cam.codec,
            "size": [cam.width, cam.height],
            "depth": cam.is_depth,
        }
        if cam.storage == "video":
            files = sorted((layout.root / "videos" / cam.key).glob("chunk-*/file-*.mp4"))
            entry["files"] = len(files)
            entry["bytes"] = sum(f.stat().st_size for f in files)
        cameras.append(entry)
    return {
        "root": str(layout.root),
        "repo_id": resolved.repo_id,
        "revision": resolved.revision,
        "codebase_version": layout.version,
        "robot_type": layout.info.get("robot_type"),
        "fps": layout.fps,
        "episodes": meta.num_rows,
        "frames": int(sum(lengths)),
        "duration_s": round(sum(lengths) / layout.fps, 3),
        "cameras": cameras,
        "tasks": [t for _, t in sorted(tasks.items())],
        "language_columns": {c: c in layout.features for c in ("language_persistent", "language_events")},
        "tools": [t.get("function", {}).get("name") for t in layout.info.get("tools") or []],
        "problems": metadata_problems(layout, meta, tasks),  # what annotate / keyframes would refuse
    }


def format_summary(s: dict[str, Any]) -> str:
    where = s["repo_id"] + "@" + s["revision"] if s["repo_id"] else s["root"]
    lines = [
        f"dataset   {where}",
        f"version   {s['codebase_version']}  robot {s['robot_type']}",
        f"episodes  {s['episodes']}  frames {s['frames']}  fps {s['fps']}  duration {s['duration_s']} s",
        "cameras",
    ]
    for c in s["cameras"]:
        size = "x".join(str(v) for v in c["size"])
        extra = f"  {c['files']} file(s), {c['bytes'] / 1e6:.2f} MB" if c["storage"] == "video" else ""
        depth = "  (depth, not annotated)" if c["depth"] else ""
        lines.append(f"  {c['key']:<32} {c['storage']:<5} {c['codec'] or '-':<6} {size}{extra}{depth}")
    lines.append(f"tasks     {len(s['tasks'])}")
    lines.extend(f"  - {t}" for t in s["tasks"][:20])
    if len(s["tasks"]) > 20:
        lines.append(f"  ... and {len(s['tasks']) - 20} more")
    langs = ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in s["language_columns"].items())
    lines.append(f"language  {langs}")
    if s["tools"]:
        lines.append(f"tools     {', '.join(str(t) for t in s['tools'])}")
    lines.extend(f"problem   {p}" for p in s.get("problems") or [])
    return "\n".join(lines)
