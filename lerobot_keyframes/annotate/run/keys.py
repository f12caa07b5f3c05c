"""Staging keys: everything that determines a staged result, hashed.

A staged (episode, module) result is reused only when nothing that produced it changed. Two halves:

- the *module key* (`module_keys`, each module's `Module.key_parts`): the module's config, the model identity
  (id, revision, sampling), the prompt templates, the run seed, and the source dataset's identity; a module
  that requires or uses another includes that one's key instead (interjections and vqa: the plan key, since
  they are built on its spans);
- the *episode inputs* (`episode_inputs`): what the episode itself feeds the modules — its task text,
  its exact frame timestamps, its data file, and per camera the video file's identity (path, size,
  modification time; for a Hub snapshot the commit, whether the file is streamed or downloaded) with the
  episode's time range in it. An edited task, a re-encoded video or another
  dataset in the same `--out` changes it, so its staged rows are recomputed, never reused.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import AnnotateConfig, config_hash
from ..modules.base import KeyInputs
from ..modules.registry import run_modules

if TYPE_CHECKING:
    from ...vlm.config import VlmConfig


def model_identity(vlm_config: VlmConfig | None) -> dict[str, Any]:
    """What about the model changes its answers (and so belongs in a staging key)."""
    return {
        "model_id": getattr(vlm_config, "model_id", None),
        "revision": getattr(vlm_config, "revision", None),
        "temperature": getattr(vlm_config, "temperature", None),
        "top_p": getattr(vlm_config, "top_p", None),
        "seed": getattr(vlm_config, "seed", None),
        "max_new_tokens": getattr(vlm_config, "max_new_tokens", None),
        "chat_template_kwargs": getattr(vlm_config, "chat_template_kwargs", None),
    }


def source_identity(config: AnnotateConfig) -> str:
    """The source dataset: a Hub repo id (its revision's content is in the episode inputs) or a local root."""
    if config.root is not None:
        return "local:" + str(Path(config.root).expanduser().resolve())
    return f"hub:{config.repo_id}"


def module_keys(config: AnnotateConfig, vlm_config: VlmConfig | None, source: str | None = None) -> dict[str, str]:
    """Staging keys of every registered module, in run order: module config + model identity + prompts + seed +
    source (`source_identity(config)` unless given); a module that requires or uses others includes their keys
    instead of the source. A run computes them once, in its plan (`plan.plan_run`)."""
    modules = run_modules(config)
    identity = model_identity(vlm_config)
    source = source_identity(config) if source is None else source
    keys: dict[str, str] = {}
    for m in modules.all:
        upstream = tuple(keys[name] for name in (*m.requires, *m.uses))
        keys[m.name] = m.staging_key(modules.config_of(m), KeyInputs(config, identity, source, upstream))
    return keys


def _video_identity(root: str | Path, rel: str) -> dict[str, Any]:
    """A video of a Hub snapshot is its commit (streamed or downloaded, the same bytes); a local one its size and
    modification time."""
    from ...dataset.remote import snapshot_commit

    commit = snapshot_commit(root)
    return {"commit": commit} if commit is not None else _file_identity(Path(root) / rel)


def _file_identity(path: Path) -> dict[str, Any]:
    try:
        st = os.stat(path)  # follows symlinks: a Hub cache snapshot's blob
    except OSError:
        return {"missing": True}
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def episode_inputs(row: Mapping[str, Any], root: str | Path | None = None) -> str:
    """A short hash of what one episode feeds the modules (see the module docstring).

    `row` is an episode-table row (`load_episodes`); `root` resolves its relative camera paths. Image
    cameras live in the data file, which in-place writes rewrite, so they are identified by path only.
    """
    ts = np.asarray(row.get("timestamps") or [], dtype=np.float32)
    cameras = []
    for cam in row.get("cameras") or []:
        entry = {k: cam.get(k) for k in ("key", "storage", "path", "from_timestamp", "to_timestamp")}
        if cam.get("storage") == "video" and root is not None and cam.get("path"):
            entry.update(_video_identity(root, cam["path"]))
        cameras.append(entry)
    blob = {
        "episode_index": int(row.get("episode_index", -1)),
        "task": row.get("task"),
        "tasks": row.get("tasks"),
        "length": len(ts),
        "timestamps": hashlib.sha256(ts.tobytes()).hexdigest(),
        "data_file": row.get("data_file"),
        "cameras": sorted(cameras, key=lambda c: str(c["key"])),
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def episodes_inputs(rows: Iterable[Mapping[str, Any]], root: str | Path | None, source: str = "") -> dict[int, str]:
    """episode index -> its inputs key (`episode_inputs`), with the source identity folded in."""
    return {int(r["episode_index"]): config_hash(source, episode_inputs(r, root)) for r in rows}


__all__ = ["episode_inputs", "episodes_inputs", "model_identity", "module_keys", "source_identity"]
