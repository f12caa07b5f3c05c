"""Qwen-VL content blocks built from decoded frames, contact sheets, and vision-token accounting.

Blocks follow the dialect of qwen-vl-utils and transformers' Qwen-VL chat templates:

- `{"type": "image", "image": PIL, "source": {...}}`: one frame, with its provenance (file, pts,
  camera, episode, parquet timestamp) so an answer can be traced back to the exact frame.
- `{"type": "video", "video": [PIL, ...], ...}`: frames plus what the processors need for correct
  temporal positions: `fps`/`sample_fps` (frames per second of the sampled sequence, the number
  Qwen2.5-VL's `second_per_grid_ts` comes from; same formula as transformers' `VideoMetadata.sampled_fps`),
  `raw_fps`, `frames_indices` and a `video_metadata` dict (`transformers.video_utils.VideoMetadata`
  fields; Qwen3-VL prints `<t seconds>` from `frames_indices / fps`), and the exact `timestamps`.
- `{"type": "video_url", "video_url": {"url": ...}}`: an episode clip re-encoded to H.264 for servers,
  cached on disk by content key and reused.

Token accounting mirrors transformers' `smart_resize` (Qwen2/2.5-VL: 14 px patches merged 2x2 = 28 px
per token side; Qwen3-VL: 16 px patches = 32 px), with the pixel bounds of the released checkpoints
(the family table lives in `lerobot_keyframes.vlm.families`).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..utils.files import atomic_path
from ..vlm.families import FAMILIES, VisionFamily
from ..vlm.families import vision_family as _family

if TYPE_CHECKING:
    from PIL import Image

    from ..dataset.records import Episode
    from .provider import FrameProvider
    from .types import Frames

    # frames with their provenance (from a FrameProvider), or plain images with `timestamps` alongside
    FrameImages = Frames | Sequence[Image.Image]

logger = logging.getLogger(__name__)

__all__ = [
    "FAMILIES",
    "VisionFamily",
    "block_tokens",
    "contact_sheet_blocks",
    "contact_sheets",
    "episode_clip",
    "fit_to_token_budget",
    "image_block",
    "image_blocks",
    "smart_resize",
    "text_block",
    "to_jpeg",
    "video_block",
    "video_tokens",
    "video_url_block",
    "vision_tokens",
]


# -- vision-token accounting --------------------------------------------------------------------------
def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """(height, width) the Qwen-VL image processors resize to (same arithmetic as transformers)."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"absolute aspect ratio must be smaller than 200, got {max(height, width) / min(height, width)}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def _video_smart_resize(frames: int, height: int, width: int, fam: VisionFamily, min_pixels: int,
                        max_pixels: int) -> tuple[int, int]:
    factor = fam.factor
    if not fam.video_budget_over_frames:
        return smart_resize(height, width, factor, min_pixels, max_pixels)
    # transformers' Qwen3-VL video smart_resize: the bounds apply to t*h*w of the whole clip
    t = fam.temporal_patch_size
    if frames < t:
        raise ValueError(f"a Qwen3-VL video needs at least {t} frames, got {frames}")
    if height < factor or width < factor:
        scale = max(factor / height, factor / width)
        height, width = int(height * scale), int(width * scale)
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    t_bar = round(frames / t) * t
    if t_bar * h_bar * w_bar > max_pixels:
        beta = math.sqrt((frames * height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif t_bar * h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (frames * height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def vision_tokens(width: int, height: int, family: str | VisionFamily = "qwen2_5_vl", *,
                  min_pixels: int | None = None, max_pixels: int | None = None) -> int:
    """LLM tokens one image of `width` x `height` costs after the processor's resize."""
    fam = _family(family)
    h, w = smart_resize(height, width, fam.factor, min_pixels or fam.min_pixels, max_pixels or fam.max_pixels)
    return (h // fam.factor) * (w // fam.factor)


def video_tokens(width: int, height: int, frames: int, family: str | VisionFamily = "qwen2_5_vl", *,
                 min_pixels: int | None = None, max_pixels: int | None = None) -> int:
    """LLM tokens a video of `frames` frames costs (frames are merged in pairs, the last one repeated)."""
    fam = _family(family)
    h, w = _video_smart_resize(frames, height, width, fam, min_pixels or fam.video_min_pixels,
                               max_pixels or fam.video_max_pixels)
    grid_t = -(-frames // fam.temporal_patch_size)
    return grid_t * (h // fam.factor) * (w // fam.factor)


def fit_to_token_budget(images: Sequence[Image.Image], budget: int, family: str | VisionFamily = "qwen2_5_vl",
                        *, min_pixels: int | None = None, max_pixels: int | None = None) -> list[Image.Image]:
    """Images downscaled by one common factor so that together they cost at most `budget` tokens.

    Returned sizes are fixed points of the processor's resize (multiples of the token side, within the
    pixel bounds), so the processor leaves them alone and the cost is exactly `sum(vision_tokens(...))`.
    Images that already fit are returned unchanged. Raises when even the smallest allowed size does not fit.
    """
    from PIL import Image as PILImage

    fam = _family(family)
    lo_px, hi_px = min_pixels or fam.min_pixels, max_pixels or fam.max_pixels
    images = list(images)
    if not images:
        return []
    sizes = [(im.height, im.width) for im in images]

    def plan(scale: float | None) -> list[tuple[int, int]]:
        out = []
        for h, w in sizes:
            cap = hi_px if scale is None else min(hi_px, max(lo_px, int(scale * h * w)))
            rh, rw = smart_resize(h, w, fam.factor, lo_px, cap)
            # what the processor does to that size (the max branch can undershoot min_pixels)
            out.append(smart_resize(rh, rw, fam.factor, lo_px, hi_px))
        return out

    def cost(dims: list[tuple[int, int]]) -> int:
        return sum((h // fam.factor) * (w // fam.factor) for h, w in dims)

    native = plan(None)
    if cost(native) <= budget:
        return images
    floor = plan(0.0)
    if cost(floor) > budget:
        raise ValueError(
            f"token budget {budget} is too small for {len(images)} image(s): the {fam.name} minimum of "
            f"{lo_px} pixels per image already costs {cost(floor)} tokens"
        )
    lo, hi = 0.0, 1.0
    for _ in range(50):
        mid = (lo + hi) / 2
        if cost(plan(mid)) <= budget:
            lo = mid
        else:
            hi = mid
    dims = plan(lo)
    return [im if (im.height, im.width) == (h, w) else im.resize((w, h), PILImage.Resampling.BICUBIC)
            for im, (h, w) in zip(images, dims)]


def block_tokens(block: Mapping[str, Any], family: str | VisionFamily = "qwen2_5_vl") -> int:
    """Vision tokens of one content block (0 for text). Honours the block's `min_pixels`/`max_pixels`
    and `resized_height`/`resized_width` keys like qwen-vl-utils."""
    kind = block.get("type")
    if kind == "image" or "image" in block:
        image = block["image"]
        if "resized_height" in block and "resized_width" in block:
            h, w = int(block["resized_height"]), int(block["resized_width"])
        else:
            w, h = image.size
        return vision_tokens(w, h, family, min_pixels=block.get("min_pixels"), max_pixels=block.get("max_pixels"))
    if kind == "video" or "video" in block:
        frames = block["video"]
        w, h = frames[0].size
        return video_tokens(w, h, len(frames), family, min_pixels=block.get("min_pixels"),
                            max_pixels=block.get("max_pixels"))
    return 0


# -- frames -> blocks ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Item:
    image: Image.Image
    timestamp: float
    pts: float | None
    index: int | None


def _items(frames: FrameImages, timestamps: Sequence[float] | None = None) -> tuple[list[_Item], dict[str, Any]]:
    """Frames (from a FrameProvider) or PIL images + timestamps -> items and the shared provenance."""
    if hasattr(frames, "to_pil"):
        pils = frames.to_pil()
        missing = [i for i, p in enumerate(pils) if p is None]
        if missing:
            raise ValueError(
                f"episode {frames.episode_index}, camera {frames.camera!r}, file {frames.file}: no frame at "
                f"time(s) {[frames.requested[i] for i in missing]} ({[frames.errors[i] for i in missing]})"
            )
        items = [
            _Item(p, float(frames.requested[i]), float(frames.pts[i]), int(frames.indices[i]))
            for i, p in enumerate(pils)
        ]
        common = {"file": frames.file, "camera": frames.camera, "episode_index": int(frames.episode_index)}
        return items, common
    images = list(frames)
    if timestamps is None or len(timestamps) != len(images):
        raise ValueError("pass one timestamp per image (or a Frames object from a FrameProvider)")
    return [_Item(im, float(t), None, None) for im, t in zip(images, timestamps)], {}


def text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def image_block(image: Image.Image, *, source: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """`{"type": "image", "image": PIL}` with optional provenance and processor keys (`max_pixels`, ...)."""
    block: dict[str, Any] = {"type": "image", "image": image, **extra}
    if source is not None:
        block["source"] = dict(source)
    return block


def image_blocks(frames: FrameImages, timestamps: Sequence[float] | None = None, **extra: Any) -> list[dict[str, Any]]:
    """One image block per frame, each with `source: {file, pts, camera, episode_index, timestamp}`."""
    items, common = _items(frames, timestamps)
    return [
        image_block(it.image, source={**common, "pts": it.pts, "timestamp": it.timestamp}, **extra) for it in items
    ]


def video_block(frames: FrameImages, timestamps: Sequence[float] | None = None, *,
                episode: Episode | None = None,
                raw_fps: float | None = None, total_frames: int | None = None, **extra: Any) -> dict[str, Any]:
    """A video block from keyframes, carrying the temporal metadata the Qwen-VL processors use.

    `raw_fps` and `total_frames` default to the episode's `fps` and `length`. Frame indices come from the
    provider (`Frames.indices`) or, for plain images, from `round(t * raw_fps)`.
    """
    items, common = _items(frames, timestamps)
    if not items:
        raise ValueError("a video block needs at least one frame")
    if episode is not None:
        raw_fps = raw_fps or episode.fps
        total_frames = total_frames or episode.length or len(episode.timestamps)
    if not raw_fps:
        raise ValueError("video_block needs raw_fps (or episode=) to place frames in time")
    indices = [it.index if it.index is not None else int(round(it.timestamp * raw_fps)) for it in items]
    total = total_frames or (indices[-1] + 1)
    sample_fps = len(items) / total * raw_fps  # = transformers VideoMetadata.sampled_fps
    w, h = items[0].image.size
    block: dict[str, Any] = {
        "type": "video",
        "video": [it.image for it in items],
        "fps": sample_fps,
        "sample_fps": sample_fps,
        "raw_fps": float(raw_fps),
        "timestamps": [it.timestamp for it in items],
        "frames_indices": indices,
        "video_metadata": {
            "total_num_frames": int(total),
            "fps": float(raw_fps),
            "width": w,
            "height": h,
            "duration": total / float(raw_fps),
            "video_backend": "lerobot_keyframes",
            "frames_indices": indices,
        },
        **extra,
    }
    if common or any(it.pts is not None for it in items):
        block["source"] = {**common, "pts": [it.pts for it in items], "timestamps": [it.timestamp for it in items]}
    return block


# -- contact sheets -----------------------------------------------------------------------------------
def _font(size: int) -> Any:
    from PIL import ImageFont

    for name in ("DejaVuSans-Bold.ttf", "DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def _badge(draw: Any, xy: tuple[int, int], text: str, font: Any, pad: int) -> None:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x, y = xy
    draw.rectangle([x, y, x + (right - left) + 2 * pad, y + (bottom - top) + 2 * pad], fill=(0, 0, 0))
    draw.text((x + pad - left, y + pad - top), text, fill=(255, 255, 64), font=font)


def _sheet_spans(n: int, frames_per_sheet: int) -> list[tuple[int, int]]:
    """[start, stop) of each sheet: ceil(n / frames_per_sheet) sheets whose sizes differ by at most one."""
    if n == 0:
        return []
    count = -(-n // frames_per_sheet)
    base, extra = divmod(n, count)
    spans, start = [], 0
    for s in range(count):
        stop = start + base + (1 if s < extra else 0)
        spans.append((start, stop))
        start = stop
    return spans


def contact_sheets(frames: FrameImages, timestamps: Sequence[float] | None = None, *, columns: int = 4,
                   tile_width: int = 256, frames_per_sheet: int = 16, label: str = "{t:.2f} s", gap: int = 4,
                   background: tuple[int, int, int] = (32, 32, 32), format: Literal["pil", "jpeg"] = "pil",
                   quality: int = 85) -> list[Image.Image] | list[bytes]:
    """Grids of downscaled frames, each with its time burned in a badge (top-left, yellow on black).

    Frames are split over `ceil(n / frames_per_sheet)` sheets of near-equal size; each sheet uses as few rows
    as `columns` allows and then as few columns as those rows need, so no row is empty. `label` is
    formatted with `t` (seconds), `i` (1-based position) and `camera`. `format="jpeg"` returns bytes.
    """
    if format not in ("pil", "jpeg"):
        raise ValueError(f"contact_sheets: format must be 'pil' or 'jpeg', got {format!r}")
    items, common = _items(frames, timestamps)
    sheets = _render_sheets(items, common, columns=columns, tile_width=tile_width, frames_per_sheet=frames_per_sheet,
                            label=label, gap=gap, background=background)
    return [to_jpeg(sheet, quality) if format == "jpeg" else sheet for sheet, _ in sheets]


def _render_sheets(items: list[_Item], common: Mapping[str, Any], *, columns: int = 4, tile_width: int = 256,
                   frames_per_sheet: int = 16, label: str = "{t:.2f} s", gap: int = 4,
                   background: tuple[int, int, int] = (32, 32, 32)) -> list[tuple[Image.Image, list[_Item]]]:
    from PIL import Image as PILImage
    from PIL import ImageDraw

    if columns < 1 or tile_width < 16 or frames_per_sheet < 1:
        raise ValueError("contact_sheets: columns >= 1, tile_width >= 16 and frames_per_sheet >= 1 are required")
    camera = common.get("camera", "")
    font = _font(max(10, round(tile_width * 0.075)))
    pad = max(2, tile_width // 100)
    out = []
    for first, stop in _sheet_spans(len(items), frames_per_sheet):
        chunk = items[first:stop]
        rows = -(-len(chunk) // columns)
        cols = -(-len(chunk) // rows)
        tile_h = max(round(tile_width * it.image.height / it.image.width) for it in chunk)
        sheet = PILImage.new("RGB", (cols * tile_width + (cols + 1) * gap, rows * tile_h + (rows + 1) * gap),
                             background)
        draw = ImageDraw.Draw(sheet)
        for k, it in enumerate(chunk):
            r, c = divmod(k, cols)
            th = round(tile_width * it.image.height / it.image.width)
            tile = it.image.convert("RGB").resize((tile_width, th), PILImage.Resampling.BILINEAR, reducing_gap=2.0)
            x, y = gap + c * (tile_width + gap), gap + r * (tile_h + gap)
            sheet.paste(tile, (x, y))
            _badge(draw, (x + pad, y + pad), label.format(t=it.timestamp, i=first + k + 1, camera=camera), font, pad)
        out.append((sheet, chunk))
    return out


def contact_sheet_blocks(frames: FrameImages, timestamps: Sequence[float] | None = None, **options: Any) -> list[dict[str, Any]]:
    """Image blocks of contact sheets; `source` lists each sheet's frame times and pts in reading order."""
    items, common = _items(frames, timestamps)
    blocks = []
    for sheet, chunk in _render_sheets(items, common, **options):
        source = {**common, "kind": "contact_sheet", "timestamps": [it.timestamp for it in chunk],
                  "pts": [it.pts for it in chunk]}
        blocks.append(image_block(sheet, source=source))
    return blocks


def to_jpeg(image: Image.Image, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


# -- video_url: H.264 episode clips for servers -------------------------------------------------------
@dataclass(frozen=True)
class Clip:
    path: Path
    fps: float
    timestamps: tuple[float, ...]
    camera: str
    episode_index: int
    source_file: str


def _default_clip_dir() -> Path:
    base = os.environ.get("LEROBOT_KEYFRAMES_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "lerobot_keyframes")
    return Path(base) / "clips"


def _camera_row(episode: Mapping[str, Any], camera: str | None) -> Mapping[str, Any]:
    cams = list(episode.get("cameras") or [])
    if not cams:
        raise ValueError(f"episode {episode.get('episode_index')} has no camera")
    if camera is None:
        return cams[0]
    for c in cams:
        if c["key"] == camera:
            return c
    raise ValueError(f"episode {episode.get('episode_index')}: no camera {camera!r} (has {[c['key'] for c in cams]})")


def episode_clip(provider: FrameProvider, episode: Mapping[str, Any], camera: str | None = None, *, sample_fps: float = 2.0,
                 max_frames: int | None = None, width: int | None = None, crf: int = 23,
                 cache_dir: str | Path | None = None) -> Clip:
    """An H.264 mp4 of one episode/camera sampled at `sample_fps` (at most `max_frames`), cached and reused.

    Frames come from the provider (exact frames, real times); the clip plays them at a constant
    `sample_fps` so a server's own sampling sees correct temporal spacing. The cache key covers the
    source file (path, size, mtime), the episode span, the sampled times and the encoding settings.
    """
    from .policies import Cap, Fps

    cam = _camera_row(episode, camera)
    policy = Fps(sample_fps) if max_frames is None else Cap(Fps(sample_fps), max_frames)
    times = [float(t) for t in policy.timestamps(episode)]
    root = Path(episode.get("root") or ".")
    src = root / cam["path"]
    stat = src.stat() if src.exists() else None
    key = json.dumps({
        "v": 1, "file": str(src.resolve()) if stat else str(src), "size": stat.st_size if stat else None,
        "mtime": stat.st_mtime_ns if stat else None, "camera": cam["key"], "episode": int(episode["episode_index"]),
        "from": cam.get("from_timestamp"), "times": times, "fps": sample_fps, "width": width, "crf": crf,
    }, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    directory = Path(cache_dir) if cache_dir is not None else _default_clip_dir()
    path = directory / f"ep{int(episode['episode_index']):06d}-{cam['key'].replace('/', '_')}-{digest}.mp4"
    clip = Clip(path, float(sample_fps), tuple(times), cam["key"], int(episode["episode_index"]), cam["path"])
    if path.exists() and path.stat().st_size > 0:
        return clip
    frames = provider.frames_at(episode, times, camera=cam["key"])
    items, _ = _items(frames)
    _encode_h264([it.image for it in items], path, sample_fps, width=width, crf=crf)
    return clip


def _encode_h264(images: Sequence[Image.Image], path: Path, fps: float, *, width: int | None, crf: int) -> None:
    """Encode PIL frames at a constant rate to an mp4 (libx264, yuv420p), atomically."""
    import av
    from PIL import Image as PILImage

    if not images:
        raise ValueError(f"{path}: no frames to encode")
    w0, h0 = images[0].size
    w = width or w0
    h = round(h0 * w / w0)
    w, h = w - w % 2, h - h % 2  # yuv420p needs even sides
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast", "g": str(max(1, round(fps)))}
        for im in images:
            im = im.convert("RGB")
            if im.size != (w, h):
                im = im.resize((w, h), PILImage.Resampling.BILINEAR)
            for packet in stream.encode(av.VideoFrame.from_image(im)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def video_url_block(provider: FrameProvider, episode: Mapping[str, Any], camera: str | None = None, *, url: str = "file",
                    **clip_options: Any) -> dict[str, Any]:
    """`{"type": "video_url", "video_url": {"url": ...}}` of a cached H.264 clip of the episode.

    `url="file"` gives a `file://` URL (servers that may read local media, e.g. vLLM with
    `--allowed-local-media-path`); `url="data"` inlines the mp4 as a base64 data URL.
    """
    clip = episode_clip(provider, episode, camera, **clip_options)
    if url == "data":
        target = "data:video/mp4;base64," + base64.b64encode(clip.path.read_bytes()).decode()
    elif url == "file":
        target = clip.path.resolve().as_uri()
    else:
        raise ValueError(f"url must be 'file' or 'data', got {url!r}")
    return {
        "type": "video_url",
        "video_url": {"url": target},
        "fps": clip.fps,
        "timestamps": list(clip.timestamps),
        "source": {"file": clip.source_file, "camera": clip.camera, "episode_index": clip.episode_index,
                   "timestamps": list(clip.timestamps), "clip": str(clip.path)},
    }
