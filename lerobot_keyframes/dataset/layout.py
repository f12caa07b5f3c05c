"""The LeRobot v3 on-disk layout: info.json, path templates kept inside the root, camera features."""

from __future__ import annotations

import errno
import json
import os
import os.path
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..utils.structured import InputBoundsError, check_bounds
from .errors import (
    DatasetFormatError,
    OutputOverlapError,
    UnsafeLinkError,
    UnsafePathError,
    UnsupportedVersionError,
)

INFO_PATH = "meta/info.json"
TASKS_PATH = "meta/tasks.parquet"
STATS_PATH = "meta/stats.json"
EPISODES_DIR = "meta/episodes"
DEFAULT_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DEFAULT_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
LANGUAGE_COLUMNS = ("language_persistent", "language_events")
INFO_MAX_BYTES = 64 << 20
_TEMPLATE_FIELDS = {"chunk_index", "file_index", "video_key", "episode_chunk", "episode_index"}


@dataclass(frozen=True)
class CameraFeature:
    """One camera of the dataset as declared in info.json."""

    key: str
    storage: str  # "video" (mp4 files) or "image" (frames inside the data parquet)
    height: int | None
    width: int | None
    codec: str | None
    pix_fmt: str | None
    fps: float | None
    is_depth: bool


@dataclass(frozen=True)
class DatasetLayout:
    """A parsed `meta/info.json` bound to its root; builds every path and keeps it inside the root."""

    root: Path
    info: dict[str, Any] = field(repr=False)

    @classmethod
    def open(cls, root: str | Path) -> DatasetLayout:
        root = Path(root).expanduser().resolve()
        path = root / INFO_PATH
        if not path.is_file():
            raise DatasetFormatError(
                f"{path}: missing. A LeRobot v3 dataset root contains meta/info.json "
                f"(is {root} the dataset root?)"
            )
        if path.stat().st_size > INFO_MAX_BYTES:
            raise DatasetFormatError(f"{path}: {path.stat().st_size} bytes; an info.json is a few kB")
        try:
            info = json.loads(path.read_bytes())
            check_bounds(info, str(path), max_nodes=None)  # 64 levels: what we write back must be writable
        except RecursionError:  # a 50 kB `[[[[...` is a format error, not a crash
            raise DatasetFormatError(f"{path}: nested too deeply to read") from None
        except InputBoundsError as exc:
            raise DatasetFormatError(str(exc)) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DatasetFormatError(f"{path}: malformed JSON ({exc})") from exc
        if not isinstance(info, dict):
            raise DatasetFormatError(f"{path}: expected a JSON object, got {type(info).__name__}")
        layout = cls(root=root, info=info)
        layout._check()
        return layout

    def _check(self) -> None:
        path = self.root / INFO_PATH
        version = self.info.get("codebase_version")
        if not isinstance(version, str):
            raise DatasetFormatError(f"{path}: 'codebase_version' is missing")
        if not version.startswith("v3."):
            hint = ""
            if version.startswith("v2"):
                hint = (
                    " Convert it with lerobot's converter: "
                    "`python -m lerobot.datasets.v30.convert_dataset_v21_to_v30 --repo-id=<repo>`."
                )
            raise UnsupportedVersionError(
                f"{path}: codebase_version {version!r} is not supported (need v3.x).{hint}"
            )
        for key, kind in (("fps", (int, float)), ("features", dict)):
            if not isinstance(self.info.get(key), kind):
                raise DatasetFormatError(f"{path}: {key!r} is missing or has the wrong type")
        if self.info["fps"] <= 0:
            raise DatasetFormatError(f"{path}: 'fps' must be positive, got {self.info['fps']}")
        for key, feat in self.info["features"].items():
            if not isinstance(feat, dict) or "dtype" not in feat:
                raise DatasetFormatError(f"{path}: feature {key!r} has no 'dtype'")
        if self.video_keys and not self.info.get("video_path"):
            raise DatasetFormatError(f"{path}: video features {self.video_keys} but 'video_path' is null")

    # -- info -----------------------------------------------------------------------------------
    @property
    def version(self) -> str:
        return self.info["codebase_version"]

    @property
    def fps(self) -> int | float:
        return self.info["fps"]

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        return self.info["features"]

    @property
    def cameras(self) -> list[CameraFeature]:
        """Video and image cameras, in info.json order (depth streams included, flagged)."""
        cams = []
        for key, feat in self.features.items():
            if feat["dtype"] not in ("video", "image"):
                continue
            vinfo = feat.get("info") or {}
            shape = feat.get("shape") or [None, None, None]
            names = feat.get("names") or []
            height = vinfo.get("video.height")
            width = vinfo.get("video.width")
            if (height is None or width is None) and len(shape) == 3:
                # shape follows names, usually [height, width, channels]
                order = list(names) if len(names) == 3 else ["height", "width", "channels"]
                dims = dict(zip(order, shape))
                height = height or dims.get("height")
                width = width or dims.get("width")
            is_depth = bool(vinfo.get("video.is_depth_map", False) or feat.get("is_depth_map", False))
            cams.append(
                CameraFeature(
                    key=key,
                    storage=feat["dtype"],
                    height=int(height) if height else None,
                    width=int(width) if width else None,
                    codec=vinfo.get("video.codec"),
                    pix_fmt=vinfo.get("video.pix_fmt"),
                    fps=vinfo.get("video.fps"),
                    is_depth=is_depth,
                )
            )
        return cams

    @property
    def video_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f["dtype"] == "video"]

    @property
    def camera_keys(self) -> list[str]:
        """Annotation cameras: video and image cameras without depth streams."""
        return [c.key for c in self.cameras if not c.is_depth]

    @property
    def language_columns(self) -> list[str]:
        return [k for k in LANGUAGE_COLUMNS if k in self.features]

    # -- paths ----------------------------------------------------------------------------------
    def data_path(self, chunk_index: int, file_index: int) -> Path:
        template = self.info.get("data_path") or DEFAULT_DATA_PATH
        return self._resolve("data_path", template, chunk_index=chunk_index, file_index=file_index)

    def video_path(self, video_key: str, chunk_index: int, file_index: int) -> Path:
        template = self.info.get("video_path") or DEFAULT_VIDEO_PATH
        return self._resolve(
            "video_path", template, video_key=video_key, chunk_index=chunk_index, file_index=file_index
        )

    def episodes_paths(self) -> list[Path]:
        base = self.root / EPISODES_DIR
        return sorted(base.glob("chunk-*/file-*.parquet"))

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _resolve(self, name: str, template: str, **values: Any) -> Path:
        """Format an untrusted template with only plain known fields, then keep it inside the root."""
        for _, field_name, _, _ in string.Formatter().parse(template):
            if field_name is None:
                continue
            if field_name not in _TEMPLATE_FIELDS:
                raise UnsafePathError(
                    f"{self.root / INFO_PATH}: {name} template {template!r} uses field {field_name!r}; "
                    f"allowed: {sorted(_TEMPLATE_FIELDS)}"
                )
        values.setdefault("episode_chunk", values.get("chunk_index"))
        values.setdefault("episode_index", values.get("file_index"))
        try:
            rel = template.format(**values)
        except (ValueError, KeyError, IndexError) as exc:
            raise DatasetFormatError(f"{self.root / INFO_PATH}: bad {name} template {template!r}: {exc}") from exc
        candidate = Path(rel)
        if candidate.is_absolute():
            raise UnsafePathError(f"{self.root / INFO_PATH}: {name} {rel!r} is absolute; it must stay inside {self.root}")
        # Hub snapshots are symlinks into the blob store: check the normalised path, not the link target.
        lexical = Path(os.path.normpath(self.root / candidate))
        if not lexical.is_relative_to(self.root):
            raise UnsafePathError(
                f"{self.root / INFO_PATH}: {name} {rel!r} resolves outside the dataset root {self.root}"
            )
        return lexical


# -- safety of the roots a command reads and writes ---------------------------------------------------
def _both_forms(path: str | Path) -> set[Path]:
    """The absolute path as written and with every symlink resolved: an overlap through a link counts."""
    p = Path(path).expanduser()
    forms = {Path(os.path.abspath(p))}
    try:
        forms.add(p.resolve())
    except (OSError, RuntimeError):  # a loop: the written form is all we can compare
        pass
    return forms


def check_output_separate(source: str | Path, out: str | Path, *, what: str = "--out", may_contain: bool = False) -> None:
    """Refuse an output that is, contains or lies inside the source dataset (one rule for every command).

    Writing there replaces, deletes or mixes the source's own files: `keyframes SRC --out SRC --overwrite`
    used to leave only the new table behind. Raises `OutputOverlapError` naming both paths.
    """
    for s in _both_forms(source):
        for o in _both_forms(out):
            if o == s:
                relation = "is"
            elif o.is_relative_to(s):
                relation = "is inside"
            elif s.is_relative_to(o) and not may_contain:  # `may_contain`: a cache that only adds its own files
                relation = "contains"
            else:
                continue
            raise OutputOverlapError(
                f"{what} {out} overlaps the source dataset {source} (it {relation} the source); writing there "
                "would destroy or mix the source's files. Choose a directory outside it."
            )


def hf_cache_blobs(root: Path) -> Path | None:
    """`<cache>/datasets--ns--name/blobs` when `root` lies in that repo's `snapshots/<rev>` (the HF cache
    layout, whose files are symlinks into the repo's blob store), else None."""
    parts = Path(os.path.abspath(root)).parts
    for i in range(len(parts) - 2):
        if parts[i].startswith(("datasets--", "models--", "spaces--")) and parts[i + 1] == "snapshots":
            return Path(*parts[: i + 1]) / "blobs"
    return None


def iter_dataset_files(
    root: str | Path, *, skip: Callable[[str], bool] | None = None
) -> list[Path]:
    """Every file of a dataset root that may be copied into an output or uploaded, as paths under `root`.

    A symlink (file or directory) is followed only when it resolves inside the root itself or, for a
    Hugging Face cache snapshot, into the blob store of the same repo (`.../datasets--ns--name/blobs`):
    anything else would copy or upload files the user never named (`meta/x -> /etc/...`), so it raises
    `UnsafeLinkError`, as do dangling links and link loops, before any work. `skip(rel)` gets the posix
    path relative to the root (directories with a trailing "/") and leaves out what it returns True for.
    """
    given = Path(root).expanduser()
    base = Path(os.path.abspath(given))
    try:
        real_root = Path(os.path.realpath(base, strict=True))
    except OSError as exc:
        raise UnsafeLinkError(f"{base}: the dataset root cannot be resolved ({exc.strerror or exc})") from None
    allowed = [real_root]
    blobs = hf_cache_blobs(base)
    if blobs is not None:
        allowed.append(Path(os.path.realpath(blobs)))

    def target_of(path: Path, rel: str) -> Path:
        try:
            real = Path(os.path.realpath(path, strict=True))
        except OSError as exc:
            kind = "is a symlink loop" if getattr(exc, "errno", None) == errno.ELOOP else "is a dangling symlink"
            raise UnsafeLinkError(
                f"{base}: {rel} {kind} (-> {os.readlink(path) if path.is_symlink() else '?'}); "
                "fix or remove it before running"
            ) from None
        if not any(real.is_relative_to(a) for a in allowed):
            raise UnsafeLinkError(
                f"{base}: {rel} is a symlink to {real}, outside the dataset root; files outside the roots you "
                "name are never copied into outputs or uploaded. Replace the link with the file itself or remove it."
            )
        return real

    files: list[Path] = []
    stack: list[tuple[Path, str, tuple[Path, ...]]] = [(base, "", (real_root,))]
    while stack:
        here, rel_dir, seen = stack.pop()
        try:
            entries = sorted(os.scandir(here), key=lambda e: e.name)
        except OSError as exc:
            raise UnsafeLinkError(f"{base}: cannot list {rel_dir or '.'} ({exc.strerror or exc})") from None
        for entry in entries:
            rel = f"{rel_dir}{entry.name}"
            path = here / entry.name
            if skip is not None and skip(rel + "/" if os.path.isdir(path) else rel):
                continue  # skipped before its link is judged: a link inside .cache/ is not ours to check
            real = target_of(path, rel) if entry.is_symlink() else None
            is_dir = real.is_dir() if real is not None else entry.is_dir(follow_symlinks=False)
            if is_dir:
                real_dir = real if real is not None else Path(os.path.realpath(path))
                if real_dir in seen:  # a directory link to one of its own ancestors
                    raise UnsafeLinkError(
                        f"{base}: {rel} is a symlink loop (-> {os.readlink(path)}); fix or remove it before running"
                    )
                stack.append((path, rel + "/", (*seen, real_dir)))
                continue
            if real.is_file() if real is not None else entry.is_file(follow_symlinks=False):
                files.append(path)  # (sockets, fifos: not dataset files)
    return sorted(files)
