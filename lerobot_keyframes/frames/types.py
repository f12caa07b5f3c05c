"""`Frames`: decoded frames that travel with the times they really have."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image


@dataclass(frozen=True, eq=False)
class Frames:
    """N requested times in, N entries out, position-aligned.

    `data` is a uint8 tensor N x C x H x W. When a provider built with `on_error="none"` could not
    deliver some entries, `data` is instead a list of N entries, each a C x H x W tensor or `None`;
    for a failed entry `timestamps`/`pts` hold NaN, `indices` hold -1 and `errors` holds the reason.
    `timestamps` are episode-relative (`pts - from_timestamp`), `pts` are presentation times in the
    file (for image-stored cameras: the parquet timestamps), `indices` are frame indices within the
    episode.
    """

    data: torch.Tensor | list[torch.Tensor | None]
    requested: tuple[float, ...]
    timestamps: tuple[float, ...]
    pts: tuple[float, ...]
    indices: tuple[int, ...]
    camera: str
    episode_index: int
    file: str
    video_backend: str = ""  # what delivered the frames: torchcodec | pyav | ffmpeg | image | cache
    errors: tuple[str | None, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.requested)

    @property
    def complete(self) -> bool:
        """True when every requested entry holds a frame."""
        return not isinstance(self.data, list) or all(d is not None for d in self.data)

    @property
    def missing(self) -> tuple[int, ...]:
        """Positions whose frame could not be delivered (only possible with `on_error="none"`)."""
        if not isinstance(self.data, list):
            return ()
        return tuple(i for i, d in enumerate(self.data) if d is None)

    def frame(self, i: int) -> torch.Tensor | None:
        return self.data[i]

    def to_numpy(self) -> list[np.ndarray | None]:
        """Frames as H x W x C uint8 arrays (None for failed entries)."""
        return [None if d is None else d.permute(1, 2, 0).contiguous().numpy() for d in self._entries()]

    def to_pil(self) -> list[Image.Image | None]:
        """Frames as RGB PIL images (None for failed entries)."""
        from PIL import Image

        return [None if a is None else Image.fromarray(a) for a in self.to_numpy()]

    def _entries(self) -> list[torch.Tensor | None]:
        if isinstance(self.data, list):
            return list(self.data)
        return [self.data[i] for i in range(self.data.shape[0])]

    def __repr__(self) -> str:
        shape = tuple(self.data.shape) if not isinstance(self.data, list) else f"list[{len(self.data)}]"
        return (
            f"Frames(episode={self.episode_index}, camera={self.camera!r}, n={len(self)}, data={shape}, "
            f"timestamps={self.timestamps}, file={self.file!r}, video_backend={self.video_backend!r})"
        )
