"""Image-stored cameras: PNG/JPEG bytes in an Image struct column (`{bytes, path}`) of the data parquet.

One source per (thread, data file): it keeps the file's `index` and `timestamp` columns (a few bytes
per row) and reads image bytes one row group at a time, only for the rows asked for.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .base import BackendDecodeError

if TYPE_CHECKING:
    import torch


class ParquetImageSource:
    name = "image"

    def __init__(self, path: str, key: str) -> None:
        import pyarrow.parquet as pq

        self.path = path
        self.key = key
        try:
            self._file = pq.ParquetFile(path)
            cols = self._file.read(columns=["index", "timestamp"])
        except Exception as exc:
            raise BackendDecodeError(f"cannot read the data parquet ({type(exc).__name__}: {exc})") from exc
        if key not in self._file.schema_arrow.names:
            raise BackendDecodeError(f"the data parquet has no column {key!r}")
        self.global_index = cols["index"].to_numpy()
        self.timestamps = cols["timestamp"].to_numpy()
        sizes = [self._file.metadata.row_group(i).num_rows for i in range(self._file.num_row_groups)]
        self._group_starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self._sorted = bool(np.all(np.diff(self.global_index) > 0)) if len(self.global_index) > 1 else True

    def rows_of(self, from_index: int, to_index: int) -> np.ndarray:
        """Row positions in the file of global frame indices [from_index, to_index)."""
        if self._sorted:
            lo = int(np.searchsorted(self.global_index, from_index, side="left"))
            hi = int(np.searchsorted(self.global_index, to_index, side="left"))
            return np.arange(lo, hi, dtype=np.int64)
        return np.nonzero((self.global_index >= from_index) & (self.global_index < to_index))[0]

    def decode_rows(self, rows: Sequence[int]) -> torch.Tensor:
        """Decode the images of sorted unique row positions, as a uint8 N x 3 x H x W tensor."""
        import torch
        from PIL import Image

        rows = np.asarray(rows, dtype=np.int64)
        images: dict[int, np.ndarray] = {}
        groups = np.searchsorted(self._group_starts, rows, side="right") - 1
        for g in np.unique(groups):
            local = rows[groups == g] - self._group_starts[g]
            try:
                column = self._file.read_row_group(int(g), columns=[self.key]).column(0)
                picked = column.take(local).to_pylist()
            except Exception as exc:
                raise BackendDecodeError(f"cannot read images of row group {int(g)} ({type(exc).__name__}: {exc})") from exc
            for row, cell in zip(rows[groups == g], picked):
                images[int(row)] = self._decode_cell(cell, int(row), Image)
        arrays = [images[int(r)] for r in rows]
        shapes = {a.shape for a in arrays}
        if len(shapes) > 1:
            raise BackendDecodeError(f"images of different sizes in one request: {sorted(shapes)}")
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)

    def _decode_cell(self, cell: object, row: int, image_module: object) -> np.ndarray:
        Image = image_module  # noqa: N806
        data = None
        if isinstance(cell, dict):
            data = cell.get("bytes")
            if data is None and cell.get("path"):
                path = cell["path"]
                if not os.path.isabs(path):
                    path = os.path.join(os.path.dirname(self.path), path)
                try:
                    with open(path, "rb") as fh:
                        data = fh.read()
                except OSError as exc:
                    raise BackendDecodeError(f"row {row}: image file {cell['path']!r} unreadable ({exc})") from exc
        elif isinstance(cell, (bytes, bytearray)):
            data = bytes(cell)
        if data is None:
            raise BackendDecodeError(f"row {row}: no image bytes in column {self.key!r}")
        try:
            with Image.open(io.BytesIO(data)) as img:  # type: ignore[attr-defined]
                return np.asarray(img.convert("RGB"))
        except Exception as exc:
            raise BackendDecodeError(f"row {row}: cannot decode the image ({type(exc).__name__}: {exc})") from exc

    def close(self) -> None:
        self._file = None
