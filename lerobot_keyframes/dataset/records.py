"""Typed records of the episode table: `Episode` and its `CameraRef`s, owned by dataset/.

The table itself is a `datasets.Dataset` (see `episode_features`); a row travels through `map` as a dict, and
code that works on one episode converts it once with `Episode.from_row` (cheap: the timestamps become one
float32 array, shared, never rebuilt in loops) and back with `to_row`. An `Episode` is frozen: a narrowed
copy is made with `dataclasses.replace` or `with_cameras`.

The episode's frames live in its data parquet; `read_columns` reads its rows of any columns (in frame
order) and `with_timestamps` completes a record whose row travelled without its timestamps, so no other
folder opens the data parquet itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .errors import DatasetFormatError

if TYPE_CHECKING:
    import pyarrow as pa

Storage = Literal["video", "image"]


@dataclass(frozen=True)
class CameraRef:
    """Where one camera's frames of one episode live: an mp4 span, or images in the data parquet."""

    key: str  # the dataset's feature key, e.g. "observation.images.front"
    storage: Storage
    path: str  # relative to the dataset root: the mp4, or the data parquet for image storage
    from_timestamp: float  # the episode's first frame in the file (s); 0 for image storage
    to_timestamp: float  # the end of the episode's span in the file (s)
    fps: float
    codec: str | None = None
    width: int | None = None
    height: int | None = None
    size_bytes: int | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> CameraRef:
        storage = str(row.get("storage") or "video")
        if storage not in ("video", "image"):
            raise ValueError(f"camera {row.get('key')!r}: storage must be 'video' or 'image', got {storage!r}")
        return cls(
            key=str(row["key"]), storage=storage, path=str(row.get("path") or ""),  # type: ignore[arg-type]
            from_timestamp=float(row.get("from_timestamp") or 0.0),
            to_timestamp=float(row.get("to_timestamp") or 0.0), fps=float(row.get("fps") or 0.0),
            codec=row.get("codec"), width=_opt_int(row.get("width")), height=_opt_int(row.get("height")),
            size_bytes=_opt_int(row.get("size_bytes")),
        )

    def to_row(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def short_name(self) -> str:
        """The key without lerobot's `observation.images.` prefix (what users type and logs show)."""
        return self.key.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class Episode:
    """One episode of a LeRobot v3 dataset: its frames' exact timestamps, its tasks and its cameras."""

    episode_index: int
    length: int
    fps: float
    timestamps: np.ndarray = field(repr=False, compare=False)  # float32, the exact parquet values
    task: str = ""
    tasks: tuple[str, ...] = ()
    cameras: tuple[CameraRef, ...] = ()
    dataset_from_index: int = 0
    dataset_to_index: int = 0
    data_file: str = ""  # relative to root
    root: str | None = None
    repo_id: str | None = None
    revision: str | None = None
    # per-frame columns that travel with the record, in frame order (a frame-level row brings the robot's
    # signals, e.g. "observation.state"); not part of the episode table, so `to_row` leaves them out
    signals: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        ts = np.asarray(self.timestamps, dtype=np.float32)
        if ts.ndim != 1:
            raise ValueError(f"episode {self.episode_index}: 'timestamps' must be 1-D, got shape {ts.shape}")
        ts.setflags(write=False)
        object.__setattr__(self, "timestamps", ts)

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | Episode) -> Episode:
        """An `Episode` from an episode-table row (a dict from `datasets`, `load_episodes` or Ray)."""
        if isinstance(row, Episode):
            return row
        timestamps = row.get("timestamps")
        return cls(
            episode_index=int(row["episode_index"]), length=int(row.get("length") or 0),
            fps=float(row.get("fps") or 0.0),
            timestamps=np.zeros(0, np.float32) if timestamps is None else np.asarray(timestamps, np.float32),
            task=str(row.get("task") or ""), tasks=tuple(row.get("tasks") or ()),
            cameras=tuple(CameraRef.from_row(c) for c in row.get("cameras") or ()),
            dataset_from_index=int(row.get("dataset_from_index") or 0),
            dataset_to_index=int(row.get("dataset_to_index") or 0),
            data_file=str(row.get("data_file") or ""), root=row.get("root"), repo_id=row.get("repo_id"),
            revision=row.get("revision"),
        )

    def to_row(self, *, timestamps: bool = True) -> dict[str, Any]:
        """The episode-table row (the schema of `episode_features`)."""
        return {
            "episode_index": self.episode_index, "task": self.task, "tasks": list(self.tasks),
            "length": self.length, "fps": self.fps,
            "timestamps": self.timestamps.tolist() if timestamps else None,
            "dataset_from_index": self.dataset_from_index, "dataset_to_index": self.dataset_to_index,
            "data_file": self.data_file, "root": self.root, "repo_id": self.repo_id, "revision": self.revision,
            "camera_keys": list(self.camera_keys), "cameras": [c.to_row() for c in self.cameras],
        }

    @property
    def camera_keys(self) -> tuple[str, ...]:
        return tuple(c.key for c in self.cameras)

    @property
    def duration(self) -> float:
        """Seconds from the first frame to the end of the last one."""
        return self.length / self.fps if self.fps else 0.0

    @property
    def data_path(self) -> Path | None:
        """The episode's data parquet on disk (None when the row has no root)."""
        return Path(self.root) / self.data_file if self.root and self.data_file else None

    def camera(self, key: str) -> CameraRef:
        """The camera with this key (full key, or its short name when that is unambiguous)."""
        for cam in self.cameras:
            if cam.key == key:
                return cam
        short = [c for c in self.cameras if c.short_name == key]
        if len(short) == 1:
            return short[0]
        raise KeyError(f"episode {self.episode_index} has no camera {key!r} (cameras: {list(self.camera_keys)})")

    def with_cameras(self, keys: Sequence[str]) -> Episode:
        """A copy that keeps only these cameras, in the episode's order."""
        wanted = set(keys)
        return dataclasses.replace(self, cameras=tuple(c for c in self.cameras if c.key in wanted))

    def read_columns(self, columns: Sequence[str]) -> pa.Table:
        """This episode's rows of `columns` from its data parquet, in frame order (one row per frame)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = self.data_path
        if path is None:
            raise DatasetFormatError(f"episode {self.episode_index}: the record has no root/data_file to read")
        wanted = list(dict.fromkeys(["episode_index", "frame_index", *columns]))
        try:
            table = pq.read_table(path, columns=wanted, filters=[("episode_index", "=", self.episode_index)])
        except FileNotFoundError as exc:
            raise DatasetFormatError(f"{path}: data file is missing (episode {self.episode_index})") from exc
        except (pa.ArrowInvalid, OSError, KeyError) as exc:
            raise DatasetFormatError(f"{path}: episode {self.episode_index}: cannot read {list(columns)} ({exc})") from exc
        table = table.sort_by("frame_index")
        if table.num_rows != self.length:
            raise DatasetFormatError(f"{path}: the data parquet holds {table.num_rows} frames of episode "
                                     f"{self.episode_index}, meta/episodes says length={self.length}")
        return table.select(list(columns))

    def with_timestamps(self) -> Episode:
        """This record when it carries its timestamps, else a copy with them read from the data parquet
        (`length / fps` spacing for a record without a data file)."""
        if len(self.timestamps) or not self.length:
            return self
        if self.data_path is None:
            ts = (np.arange(self.length, dtype=np.float64) / self.fps).astype(np.float32)
        else:
            ts = self.read_columns(["timestamp"])["timestamp"].to_numpy().astype(np.float32)
        return dataclasses.replace(self, timestamps=ts)

    def check_timestamps(self) -> np.ndarray:
        """The timestamps, checked to be strictly increasing (a clear error names the episode)."""
        ts = self.timestamps
        if len(ts) > 1 and np.any(np.diff(ts.astype(np.float64)) <= 0):
            raise ValueError(f"episode {self.episode_index}: frame timestamps are not strictly increasing")
        return ts


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)
