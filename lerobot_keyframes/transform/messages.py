"""The stored conversation: prompt templates, and `materialize_messages`, which turns a row's stored
`messages` (blocks that reference the keyframe columns) back into real Qwen-VL blocks for a VLM backend."""

from __future__ import annotations

import io
import os
import string
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    from PIL import Image

DEFAULT_PROMPT = (
    "{keyframes}"
    "These are {num_keyframes} keyframes per camera ({cameras}) of one robot episode lasting {duration:.1f} s, "
    "each labelled with its camera and its time in seconds. The robot's task: \"{task}\".\n"
    "Describe step by step, with times, what the robot does."
)
DEFAULT_LABEL = "{camera} t={t:.2f}s"
Visual = Literal["images", "video", "contact_sheet", "none"]
VISUALS: tuple[str, ...] = get_args(Visual)
PROMPT_FIELDS = {"keyframes", "task", "episode_index", "length", "duration", "fps", "cameras", "num_keyframes",
                 "timestamps"}


def check_template(name: str, template: str, allowed: set[str]) -> None:
    """Refuse a `str.format` template with a field outside `allowed` (at configuration, not mid-run)."""
    try:
        used = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise ValueError(f"{name}: malformed template {template!r}: {exc}") from exc
    reaching = sorted(u for u in used if "." in u or "[" in u)
    if reaching:  # `{task.__class__.__init__.__globals__}` walks Python objects: only plain names are fields
        raise ValueError(f"{name}: field(s) {reaching} in {template!r} reach into attributes or items; use the "
                         f"plain names {sorted(allowed)}")
    unknown = {u.split(".")[0].split("[")[0] for u in used} - allowed
    if unknown:
        raise ValueError(f"{name}: unknown field(s) {sorted(unknown)} in {template!r}; allowed: {sorted(allowed)}")


def _open_image(value: Any) -> Image.Image:
    from PIL import Image as PILImage

    if isinstance(value, PILImage.Image):
        return value
    if isinstance(value, Mapping):
        if value.get("bytes"):
            im = PILImage.open(io.BytesIO(value["bytes"]))
            im.load()
            return im
        if value.get("path"):
            return PILImage.open(value["path"])
    raise ValueError(f"cannot read an image from {type(value).__name__}")


def materialize_messages(row: Mapping[str, Any], messages: Sequence[Mapping[str, Any]] | None = None
                         ) -> list[dict[str, Any]]:
    """Qwen-VL messages with real PIL blocks, from a row's stored `messages` and keyframe columns.

    Frame references become `{"type": "image", "image": PIL, "source": {file, pts, camera, episode_index,
    timestamp}}`; video references `{"type": "video", "video": [PIL, ...], "fps", "sample_fps", "raw_fps",
    "timestamps", "frames_indices", "video_metadata", "source"}` (see `frames.blocks.video_block`);
    contact-sheet references are rendered with `frames.blocks.contact_sheets`. Keyframe columns may
    hold PIL images (as `datasets` decodes them) or `{"bytes", "path"}` dicts (raw batches).
    """
    stored = row["messages"] if messages is None else messages
    root = row.get("root") if isinstance(row.get("root"), str) else None  # absent from a pushed table
    cache: dict[tuple[str, int], Image.Image] = {}

    def image(column: str, index: int) -> Image.Image:
        key = (column, index)
        if key not in cache:
            try:
                cache[key] = _open_image(row[column][index])
            except (KeyError, IndexError) as exc:
                raise ValueError(f"message references {column}[{index}], which the row does not have") from exc
        return cache[key]

    out: list[dict[str, Any]] = []
    for message in stored:
        content = message["content"]
        if isinstance(content, str):
            out.append({"role": message["role"], "content": content})
        else:
            out.append({"role": message["role"], "content": [_materialize_block(b, image, root) for b in content]})
    return out


def root_relative(file: str | None, root: str | os.PathLike[str] | None) -> str | None:
    """A stored block's `file`: relative to the dataset root (posix), so a table holds no path of this machine;
    a file outside the root (never from a dataset) keeps only its name."""
    if file is None:
        return None
    if root is not None:
        try:
            return os.path.relpath(file, root).replace(os.sep, "/") if _inside(file, root) else os.path.basename(file)
        except ValueError:  # another drive
            return os.path.basename(file)
    return file if not os.path.isabs(file) else os.path.basename(file)


def _inside(file: str, root: str | os.PathLike[str]) -> bool:
    file, root = os.path.abspath(file), os.path.abspath(root)
    return os.path.commonpath([file, root]) == root


def _materialize_block(block: Mapping[str, Any], image: Callable[[str, int], Image.Image],
                       root: str | None = None) -> dict[str, Any]:
    """One stored block as a real Qwen-VL block (frames read through `image(column, index)`; `file` under `root`)."""
    from ..frames.blocks import contact_sheets

    kind, btype = block.get("kind"), block.get("type")
    if btype == "text" or kind is None:
        return {"type": "text", "text": block["text"]}
    frames = [image(block["column"], int(i)) for i in block["indices"]]
    times = [float(t) for t in block["timestamps"]]
    file = block.get("file")
    if file is not None and root is not None and not os.path.isabs(file):
        file = os.path.join(root, file)  # the stored path is relative to the dataset root
    source = {"file": file, "camera": block.get("camera"), "episode_index": block.get("episode_index")}
    if kind == "frame":
        return {"type": "image", "image": frames[0],
                "source": {**source, "pts": block["pts"][0], "timestamp": times[0]}}
    if kind == "video":
        total, raw_fps = int(block["total_num_frames"]), float(block["raw_fps"])
        indices = [int(i) for i in block["frames_indices"]]
        w, h = frames[0].size
        return {
            "type": "video", "video": frames, "fps": block["fps"], "sample_fps": block["fps"],
            "raw_fps": raw_fps, "timestamps": times, "frames_indices": indices,
            "video_metadata": {"total_num_frames": total, "fps": raw_fps, "width": w, "height": h,
                               "duration": total / raw_fps, "video_backend": "lerobot_keyframes",
                               "frames_indices": indices},
            "source": {**source, "pts": list(block["pts"]), "timestamps": times},
        }
    if kind == "contact_sheet":
        (sheet,) = contact_sheets(frames, times, columns=int(block.get("sheet_columns") or 4),
                                  tile_width=int(block.get("tile_width") or 256),
                                  frames_per_sheet=len(frames), label=block.get("label") or "{t:.2f} s")
        return {"type": "image", "image": sheet,
                "source": {**source, "kind": "contact_sheet", "timestamps": times, "pts": list(block["pts"])}}
    raise ValueError(f"stored block of unknown kind {kind!r}")
