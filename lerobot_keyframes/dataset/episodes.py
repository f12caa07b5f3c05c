"""The episode table: one `datasets.Dataset` row per episode, built from a LeRobot v3 dataset.

Every row is self-contained (absolute root, relative files, exact float32 frame timestamps, per-camera
file and `from_timestamp`), so `Dataset.map` workers can decode frames without re-reading metadata.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import DatasetFormatError
from .layout import EPISODES_DIR, TASKS_PATH, CameraFeature, DatasetLayout
from .records import Episode
from .remote import DEFAULT_VIDEO_ACCESS, VideoAccess, check_video_access

if TYPE_CHECKING:
    from datasets import Features

logger = logging.getLogger(__name__)

CAMERA_FIELDS = {
    "key": "string",
    "storage": "string",
    "path": "string",
    "from_timestamp": "float64",
    "to_timestamp": "float64",
    "codec": "string",
    "width": "int64",
    "height": "int64",
    "fps": "float64",
    "size_bytes": "int64",
}


def episode_features() -> Features:
    """The declared `datasets.Features` of the episode table."""
    from datasets import Features, List, Value

    return Features(
        {
            "episode_index": Value("int64"),
            "task": Value("string"),
            "tasks": List(Value("string")),
            "length": Value("int64"),
            "fps": Value("float64"),
            "timestamps": List(Value("float32")),
            "dataset_from_index": Value("int64"),
            "dataset_to_index": Value("int64"),
            "data_file": Value("string"),
            "root": Value("string"),
            "repo_id": Value("string"),
            "revision": Value("string"),
            "camera_keys": List(Value("string")),
            "cameras": List({k: Value(v) for k, v in CAMERA_FIELDS.items()}),
        }
    )


def read_tasks(layout: DatasetLayout) -> dict[int, str]:
    path = layout.root / TASKS_PATH
    if not path.is_file():
        return {}
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DatasetFormatError(f"{path}: unreadable parquet ({exc})") from exc
    if "task_index" not in table.column_names or "task" not in table.column_names:
        raise DatasetFormatError(f"{path}: expected columns 'task_index' and 'task', got {table.column_names}")
    tasks: dict[int, str] = {}
    for index, text in zip(table["task_index"].to_pylist(), table["task"].to_pylist()):
        if index in tasks:
            raise DatasetFormatError(f"{path}: task_index {index} appears twice ({tasks[index]!r} and {text!r}); "
                                     "each task needs its own task_index")
        tasks[index] = text
    return tasks


def read_episodes_meta(layout: DatasetLayout) -> pa.Table:
    """All rows of meta/episodes/*/*.parquet, sorted by episode_index, with the columns we need checked."""
    paths = layout.episodes_paths()
    if not paths:
        raise DatasetFormatError(f"{layout.root / 'meta/episodes'}: no chunk-*/file-*.parquet episode metadata")
    tables = []
    for path in paths:
        try:
            tables.append(pq.read_table(path))
        except (pa.ArrowInvalid, OSError) as exc:
            raise DatasetFormatError(f"{path}: unreadable parquet ({exc})") from exc
    # stats columns may differ between files; keep only the columns every file has
    # (`Table.column_names` builds a new list on every access: read each file's names once)
    names = [set(t.column_names) for t in tables]
    common = [c for c in tables[0].column_names if all(c in n for n in names)]
    table = pa.concat_tables([t.select(common) for t in tables], promote_options="permissive")
    have = set(common)
    required = ["episode_index", "length", "data/chunk_index", "data/file_index",
                "dataset_from_index", "dataset_to_index"]
    missing = [c for c in required if c not in have]
    if missing:
        raise DatasetFormatError(f"{paths[0].parent.parent}: episodes metadata lacks columns {missing}")
    for cam in layout.video_keys:
        cols = [f"videos/{cam}/{c}" for c in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")]
        missing = [c for c in cols if c not in have]
        if missing:
            raise DatasetFormatError(
                f"{paths[0].parent.parent}: episodes metadata lacks columns {missing} of camera {cam!r}"
            )
    table = table.sort_by("episode_index")
    indices = table["episode_index"].to_numpy()
    expected = np.arange(len(indices))
    if len(indices) and not np.array_equal(indices, expected):
        bad = int(np.nonzero(indices != expected)[0][0])
        raise DatasetFormatError(
            f"{layout.root / 'meta/episodes'}: episode indices are not contiguous from 0: "
            f"position {bad} holds episode {int(indices[bad])} (expected {bad})"
        )
    return table


def _frame_columns(path: Path, episode_indices: set[int]) -> dict[int, dict[str, np.ndarray]]:
    """episode_index -> {timestamp, frame_index, index} arrays, read from one data file."""
    if not path.is_file():
        raise DatasetFormatError(f"{path}: data file is missing")
    columns = ["episode_index", "timestamp", "frame_index", "index"]
    try:
        if "task_index" in pq.read_schema(path).names:
            columns.append("task_index")  # the episode's task when meta/episodes has no `tasks` column
        table = pq.read_table(path, columns=columns)
    except (pa.ArrowInvalid, OSError, KeyError) as exc:
        raise DatasetFormatError(f"{path}: unreadable data parquet ({exc})") from exc
    if table.schema.field("timestamp").type != pa.float32():
        raise DatasetFormatError(
            f"{path}: column 'timestamp' is {table.schema.field('timestamp').type}, expected float32"
        )
    out: dict[int, dict[str, np.ndarray]] = {}
    ep = table["episode_index"].to_numpy()
    for e in episode_indices:
        mask = pc.equal(table["episode_index"], e)
        sub = table.filter(mask)
        positions = np.nonzero(ep == e)[0]
        if len(positions) and positions[-1] - positions[0] + 1 != len(positions):
            raise DatasetFormatError(f"{path}: frames of episode {e} are not contiguous in the file")
        out[e] = {
            "timestamp": sub["timestamp"].to_numpy(),
            "frame_index": sub["frame_index"].to_numpy(),
            "index": sub["index"].to_numpy(),
        }
        if "task_index" in columns:
            out[e]["task_index"] = sub["task_index"].to_numpy()
    return out


def _tasks_from_data(data_path: Path, e: int, task_index: np.ndarray | None, tasks_by_index: dict[int, str],
                     tasks_path: Path) -> list[str]:
    """The episode's tasks from its frames' `task_index` (first-seen order), each looked up in meta/tasks."""
    if task_index is None or not len(task_index):
        return []
    ordered = list(dict.fromkeys(int(i) for i in task_index.tolist()))
    unknown = [i for i in ordered if i not in tasks_by_index]
    if unknown:
        raise DatasetFormatError(
            f"{data_path}: episode {e} field task_index holds {unknown}, which {tasks_path} does not define "
            f"(it has {sorted(tasks_by_index)[:10]})"
        )
    return [tasks_by_index[i] for i in ordered]


def _episodes_file(layout: DatasetLayout, episode: int) -> Path:
    """The meta/episodes parquet file that holds `episode` (for error messages), else the folder."""
    for path in layout.episodes_paths():
        try:
            if episode in pq.read_table(path, columns=["episode_index"])["episode_index"].to_pylist():
                return path
        except (pa.ArrowInvalid, OSError, KeyError):
            continue
    return layout.root / EPISODES_DIR


def metadata_problems(layout: DatasetLayout, meta: pa.Table, tasks_by_index: Mapping[int, str]) -> list[str]:
    """Where the metadata contradicts itself, one message per problem naming file, episode and field.

    `meta/info.json` counts (`total_episodes`, `total_frames`, `total_tasks`) against the episodes, frames
    and tasks present, and every task text of `meta/episodes` against `meta/tasks.parquet` (when it exists).
    A count that lies survives into every output written from the dataset (lerobot sizes its indices from
    it); a task text no task index defines is a task lerobot cannot resolve.
    """
    problems: list[str] = []
    info_path = layout.root / "meta/info.json"
    where = layout.root / EPISODES_DIR
    tasks_path = layout.root / TASKS_PATH
    frames = sum(int(n) for n in meta["length"].to_pylist() if n is not None)
    present = {"total_episodes": (meta.num_rows, f"{where} lists {meta.num_rows} episode(s)"),
               "total_frames": (frames, f"the episodes' lengths in {where} add up to {frames} frames")}
    if tasks_path.is_file():
        present["total_tasks"] = (len(tasks_by_index), f"{tasks_path} defines {len(tasks_by_index)} task(s)")
    for field, (count, says) in present.items():
        if field not in layout.info:
            continue
        value = layout.info[field]
        if isinstance(value, bool) or not isinstance(value, int) or value != count:
            problems.append(f"{info_path}: {field}={value!r} but {says}; fix {field}")
    if "tasks" in meta.column_names:
        kind = meta.schema.field("tasks").type
        listish = pa.types.is_list(kind) or pa.types.is_large_list(kind)
        if not (pa.types.is_null(kind) or (listish and (pa.types.is_string(kind.value_type)
                                                         or pa.types.is_large_string(kind.value_type)))):
            problems.append(f"{where}: field tasks is {kind}, expected a list of task texts (list<string>)")
        elif tasks_path.is_file() and listish:
            known = set(tasks_by_index.values())
            for e, texts in zip(meta["episode_index"].to_pylist(), meta["tasks"].to_pylist()):
                unknown = [t for t in texts or [] if t not in known]
                if unknown:
                    problems.append(f"{_episodes_file(layout, int(e))}: episode {e} field tasks holds {unknown[0]!r}, "
                                    f"which {tasks_path} does not define; fix the task text or meta/tasks.parquet")
                    break
    return problems


def check_metadata(layout: DatasetLayout, meta: pa.Table, tasks_by_index: Mapping[int, str]) -> None:
    """Raise `DatasetFormatError` with the first of `metadata_problems` (and how many more there are)."""
    problems = metadata_problems(layout, meta, tasks_by_index)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s): lerobot-keyframes info lists them)" if len(problems) > 1 else ""
        raise DatasetFormatError(problems[0] + more)


def check_video_ranges(layout: DatasetLayout, meta: pa.Table) -> None:
    """Refuse `from_timestamp`/`to_timestamp` that contradict the episode length or another episode.

    Each episode of a camera owns `[from_timestamp, to_timestamp)` of its mp4: a span that is not
    `length / fps` (one frame of slack) or that overlaps another episode of the same file would decode
    another episode's frames with exit 0. The message names the file, episode, camera and field.
    """
    if not layout.video_keys or not meta.num_rows:
        return
    cols = meta.to_pydict()
    fps = float(layout.fps)
    where = layout.root / "meta/episodes"
    for cam in layout.video_keys:
        by_file: dict[tuple[int, int], list[tuple[float, float, int]]] = {}
        for i in range(meta.num_rows):
            e, length = int(cols["episode_index"][i]), int(cols["length"][i])
            lo, hi = cols[f"videos/{cam}/from_timestamp"][i], cols[f"videos/{cam}/to_timestamp"][i]
            field = f"videos/{cam}/from_timestamp" if lo is None or not np.isfinite(lo) or lo < 0 else None
            if field is None and (hi is None or not np.isfinite(hi) or hi < lo):
                field = f"videos/{cam}/to_timestamp"
            if field is not None:
                raise DatasetFormatError(
                    f"{where}: episode {e} camera {cam!r}: {field} is invalid "
                    f"(from_timestamp={lo}, to_timestamp={hi})"
                )
            span_frames = (hi - lo) * fps
            if abs(span_frames - length) > 1.0 + 1e-6:
                raise DatasetFormatError(
                    f"{where}: episode {e} camera {cam!r}: to_timestamp - from_timestamp = {hi - lo:.6f}s "
                    f"({span_frames:.2f} frames at {fps:g} fps) but length={length} frames; fix "
                    f"videos/{cam}/from_timestamp, videos/{cam}/to_timestamp or length"
                )
            key = (cols[f"videos/{cam}/chunk_index"][i], cols[f"videos/{cam}/file_index"][i])
            by_file.setdefault(key, []).append((float(lo), float(hi), e))
        slack = 0.5 / fps
        for (chunk, file), spans in by_file.items():
            spans.sort()
            for (lo_a, hi_a, ea), (lo_b, hi_b, eb) in zip(spans, spans[1:]):
                if lo_b < hi_a - slack:
                    video = layout.relative(layout.video_path(cam, chunk, file))
                    raise DatasetFormatError(
                        f"{where}: episode {eb} camera {cam!r}: [{lo_b:.6f}, {hi_b:.6f})s of {video} overlaps "
                        f"episode {ea} [{lo_a:.6f}, {hi_a:.6f})s; fix videos/{cam}/from_timestamp of episode {eb}"
                    )


def build_episode_rows(
    layout: DatasetLayout,
    *,
    episodes: Iterable[int] | None = None,
    repo_id: str | None = None,
    revision: str | None = None,
) -> list[dict[str, Any]]:
    """Episode rows as plain dicts (the same rows `load_episodes` puts in a Dataset)."""
    meta = read_episodes_meta(layout)
    tasks_by_index = read_tasks(layout)
    total = meta.num_rows
    wanted = sorted(set(episodes)) if episodes is not None else list(range(total))
    for e in wanted:
        if not 0 <= e < total:
            raise DatasetFormatError(f"{layout.root}: episode {e} does not exist (dataset has {total} episodes)")
    cols = meta.to_pydict()
    cameras = [c for c in layout.cameras if not c.is_depth]
    sizes: dict[str, int] = {}

    # group episodes by data file so each file is read once
    by_file: dict[tuple[int, int], list[int]] = {}
    for e in wanted:
        by_file.setdefault((cols["data/chunk_index"][e], cols["data/file_index"][e]), []).append(e)
    frames: dict[int, dict[str, np.ndarray]] = {}
    data_file: dict[int, str] = {}
    for (chunk, file), eps in sorted(by_file.items()):
        path = layout.data_path(chunk, file)
        frames.update(_frame_columns(path, set(eps)))
        for e in eps:
            data_file[e] = layout.relative(path)

    rows = [_episode_row(layout, cols, e, frames[e], data_file[e], tasks_by_index, cameras, sizes,
                         repo_id=repo_id, revision=revision) for e in wanted]
    # after the data checks (a wrong `length` is reported as such first), before any decode or model call
    check_metadata(layout, meta, tasks_by_index)  # counts and task texts that lie
    check_video_ranges(layout, meta)
    return rows



def _episode_row(layout: DatasetLayout, cols: dict[str, list[Any]], e: int, fr: dict[str, np.ndarray], data_file: str,
                 tasks_by_index: dict[int, str], cameras: Sequence[CameraFeature], sizes: dict[str, int], *,
                 repo_id: str | None, revision: str | None) -> dict[str, Any]:
    """One episode's row, after checking its frames in the data parquet against meta/episodes."""
    length = int(cols["length"][e])
    data_path = layout.root / data_file
    if len(fr["timestamp"]) != length:
        raise DatasetFormatError(
            f"{data_path}: episode {e} has {len(fr['timestamp'])} frames but meta/episodes says length={length}"
        )
    finite = np.isfinite(np.asarray(fr["timestamp"], dtype=np.float64))
    if not finite.all():  # a nan would reach every time computation (grounding, sampling) as a bare ValueError
        k = int(np.flatnonzero(~finite)[0])
        raise DatasetFormatError(f"{data_path}: episode {e} frame {k}: timestamp {fr['timestamp'][k]} is not a finite "
                                 "number of seconds")
    if length and not np.array_equal(fr["frame_index"], np.arange(length)):
        raise DatasetFormatError(f"{data_path}: episode {e} frame_index is not 0..{length - 1} in order")
    lo, hi = int(cols["dataset_from_index"][e]), int(cols["dataset_to_index"][e])
    if length and (int(fr["index"][0]) != lo or int(fr["index"][-1]) != hi - 1):
        raise DatasetFormatError(
            f"{data_path}: episode {e} global index range [{int(fr['index'][0])}, {int(fr['index'][-1]) + 1}) "
            f"disagrees with meta/episodes [{lo}, {hi})"
        )
    task_list = cols["tasks"][e] if "tasks" in cols and cols["tasks"][e] is not None else []
    if not task_list:  # never task 0 for every episode: each episode's own frames say which task it is
        task_list = _tasks_from_data(data_path, e, fr.get("task_index"), tasks_by_index, layout.root / TASKS_PATH)
    return {
        "episode_index": e,
        "task": task_list[0] if task_list else "",
        "tasks": list(task_list),
        "length": length,
        "fps": float(layout.fps),
        "timestamps": fr["timestamp"],
        "dataset_from_index": lo,
        "dataset_to_index": hi,
        "data_file": data_file,
        "root": str(layout.root),
        "repo_id": repo_id,
        "revision": revision,
        "camera_keys": [c.key for c in cameras],
        "cameras": [_camera_row(layout, cols, e, cam, data_file, length, sizes) for cam in cameras],
    }


def _camera_row(layout: DatasetLayout, cols: dict[str, list[Any]], e: int, cam: CameraFeature, data_file: str,
                length: int, sizes: dict[str, int]) -> dict[str, Any]:
    """Where one camera's frames of episode `e` live: its mp4 span, or the data parquet (image storage)."""
    if cam.storage == "image":
        return {"key": cam.key, "storage": "image", "path": data_file, "from_timestamp": 0.0,
                "to_timestamp": float(length) / float(layout.fps), "codec": None, "width": cam.width,
                "height": cam.height, "fps": float(layout.fps), "size_bytes": None}
    path = layout.video_path(cam.key, cols[f"videos/{cam.key}/chunk_index"][e], cols[f"videos/{cam.key}/file_index"][e])
    rel = layout.relative(path)
    if rel not in sizes:
        sizes[rel] = path.stat().st_size if path.exists() else -1
    return {
        "key": cam.key,
        "storage": "video",
        "path": rel,
        "from_timestamp": float(cols[f"videos/{cam.key}/from_timestamp"][e]),
        "to_timestamp": float(cols[f"videos/{cam.key}/to_timestamp"][e]),
        "codec": cam.codec,
        "width": cam.width,
        "height": cam.height,
        "fps": float(cam.fps) if cam.fps else float(layout.fps),
        "size_bytes": sizes[rel] if sizes[rel] >= 0 else None,
    }

def require_episodes(count: int, root: str | Path, selection: Sequence[int] | None, flag: str) -> None:
    """Refuse work on no episodes with what is empty: the selection (`flag`) or the dataset itself.

    Without this a 0-episode dataset or `--only_episodes=[]` fails deep inside (`Column name [...] not in the
    dataset`, "no cameras"), after the output was prepared."""
    if count:
        return
    if selection is not None and not len(selection):
        raise DatasetFormatError(f"{flag}=[] selects no episode of {root}; name at least one, or leave it out for all")
    if selection is None:
        raise DatasetFormatError(f"{Path(root) / EPISODES_DIR}: the dataset has no episodes; there is nothing to do")


def load_episodes(
    source: str | Path,
    *,
    revision: str | None = None,
    episodes: Sequence[int] | None = None,
    cameras: Sequence[str] | None = None,
    download_videos: bool = False,
    video_access: VideoAccess = DEFAULT_VIDEO_ACCESS,
):
    """Read a LeRobot v3 dataset (local root or Hub repo id) into a `datasets.Dataset`, one row per episode.

    A Hub dataset is fetched with `snapshot_download` (meta and data only), at the `v3.0` tag when the repo has
    one, and its rows are pinned to that snapshot's commit. Its videos are read when frames are asked for:
    by byte range (`video_access="stream"`, or `"auto"`, the default), or downloaded whole here, for the
    selected episodes and `cameras` (`video_access="download"`, or `download_videos=True`).
    """
    from datasets import Dataset

    from .source import resolve_source

    check_video_access(video_access)
    download_videos = download_videos or video_access == "download"

    resolved = resolve_source(source, revision=revision)
    layout = DatasetLayout.open(resolved.root)
    rows = build_episode_rows(layout, episodes=episodes, repo_id=resolved.repo_id, revision=resolved.revision)
    if cameras is not None:
        unknown = sorted(set(cameras) - set(layout.camera_keys))
        if unknown:
            raise DatasetFormatError(
                f"{layout.root}: unknown camera(s) {unknown}; the dataset has {layout.camera_keys}"
            )
        for row in rows:
            row["cameras"] = [c for c in row["cameras"] if c["key"] in cameras]
            row["camera_keys"] = [c["key"] for c in row["cameras"]]
    if download_videos and resolved.repo_id is not None:
        resolved.fetch_files(sorted({c["path"] for r in rows for c in r["cameras"] if c["storage"] == "video"}))
        for row in rows:
            for cam in row["cameras"]:
                path = layout.root / cam["path"]
                cam["size_bytes"] = path.stat().st_size if path.exists() else None
    table = {k: [r[k] for r in rows] for k in episode_features()}
    return Dataset.from_dict(table, features=episode_features())


# What episode records can be read from: a dataset root / Hub repo id, or records / rows (one, or an iterable
# of them, such as a `load_episodes` table)
EpisodeSource = str | Path | Episode | Mapping[str, Any] | Iterable[Episode | Mapping[str, Any]]


def episode_records(source: EpisodeSource, *, episodes: Sequence[int] | None = None,
                    video_access: VideoAccess = DEFAULT_VIDEO_ACCESS) -> tuple[list[Episode], str | None]:
    """Typed episode records, and the dataset root / repo id they came from when `source` names one.

    `source`: a dataset root or Hub repo id, a `load_episodes` table, one row / `Episode`,
    or an iterable of them; `episodes` keeps only those indices; a Hub repo's videos are downloaded here
    only with `video_access="download"`.
    """
    from .source import is_local

    origin: str | None = None
    if isinstance(source, (str, Path)):
        if is_local(source):
            layout = DatasetLayout.open(source)
            rows: Iterable[Any] = build_episode_rows(layout, episodes=episodes)
            origin = str(layout.root)
        else:
            rows = load_episodes(str(source), episodes=episodes, video_access=video_access).to_list()
            origin = str(source)
    elif hasattr(source, "column_names") and hasattr(source, "to_list"):  # datasets.Dataset
        missing = {"episode_index", "cameras", "root"} - set(source.column_names)
        if missing:
            raise ValueError(f"the Dataset is not an episode table (missing columns {sorted(missing)})")
        rows = source.to_list()
    elif isinstance(source, (Mapping, Episode)):
        rows = [source]
    else:
        rows = list(source)
    records = [Episode.from_row(r) for r in rows]
    if episodes is not None:
        wanted = {int(e) for e in episodes}
        records = [e for e in records if e.episode_index in wanted]
    return records, origin
