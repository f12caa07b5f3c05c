"""Message dialects: Qwen-VL content blocks (our contract) -> OpenAI chat parts / vLLM chat parts.

Input blocks (see ``types.Conversation``): ``{"type": "text", "text"}``, ``{"type": "image", "image": PIL,
"source"?: {"file", "pts", "camera"}}``, ``{"type": "video", "video": [PIL, ...], "fps"?, "timestamps"?}``,
and for servers ``{"type": "image_url"|"video_url", ...}`` passed through unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .types import Conversation

if TYPE_CHECKING:
    from PIL import Image

_ROLES = ("system", "user", "assistant")
# vLLM's per-request ``media_io_kwargs``: {"video": {"fps", "frames_indices", "total_num_frames", "duration"}}
MediaIoKwargs = dict[str, dict[str, Any]]


def _is_pil(obj: Any) -> bool:
    return hasattr(obj, "convert") and hasattr(obj, "mode") and hasattr(obj, "size")


def check_conversation(conversation: Conversation, index: int | None = None) -> None:
    """Raise ValueError naming the conversation, message and block when the shape is wrong."""
    where = f"conversation {index}" if index is not None else "conversation"
    if (
        isinstance(conversation, (str, bytes))
        or not hasattr(conversation, "__len__")
        or not len(conversation)
    ):
        raise ValueError(f"{where}: expected a non-empty list of messages, got {type(conversation).__name__}")
    for m, message in enumerate(conversation):
        if not isinstance(message, Mapping) or message.get("role") not in _ROLES:
            raise ValueError(f"{where}, message {m}: needs a 'role' in {_ROLES} (got {message!r:.80})")
        content = message.get("content")
        if isinstance(content, str):
            continue
        if not isinstance(content, (list, tuple)):
            raise ValueError(f"{where}, message {m}: 'content' must be a string or a list of blocks")
        for b, block in enumerate(content):
            kind = block.get("type") if isinstance(block, Mapping) else None
            ok = {
                "text": lambda blk: isinstance(blk.get("text"), str),
                "image": lambda blk: _is_pil(blk.get("image")),
                "video": lambda blk: (
                    isinstance(blk.get("video"), (list, tuple))
                    and len(blk["video"]) > 0
                    and all(_is_pil(f) for f in blk["video"])
                ),
                "image_url": lambda blk: "image_url" in blk,
                "video_url": lambda blk: "video_url" in blk,
            }.get(kind)
            if ok is None or not ok(block):
                raise ValueError(
                    f"{where}, message {m}, block {b}: unsupported or incomplete block (images and video frames "
                    f"must be PIL images; use image_url/video_url blocks for URLs) {dict(block) if isinstance(block, Mapping) else block!r:.120}"
                )
            if (
                kind == "video"
                and block.get("timestamps") is not None
                and len(block["timestamps"]) != len(block["video"])
            ):
                raise ValueError(
                    f"{where}, message {m}, block {b}: {len(block['video'])} frames but "
                    f"{len(block['timestamps'])} timestamps"
                )


def blocks(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content or [])


def image_uuid(block: Mapping[str, Any]) -> str:
    """Stable id of an image block, for vLLM's multimodal cache.

    From the block's provenance (file, pts, camera, size) when it carries ``source``; otherwise a hash of
    the pixels. Equal ids must mean equal pixels: the size is part of the provenance key because the same
    frame may be sent at several resolutions.
    """
    image = block["image"]
    source = block.get("source")
    # only an absolute file names one video: a relative one (a keyframes table without its root) could be any
    # dataset's, and equal ids must mean equal pixels
    if (isinstance(source, Mapping) and source.get("file") is not None and source.get("pts") is not None
            and os.path.isabs(str(source["file"]))):
        key = "|".join(
            [
                "src",
                str(source["file"]),
                f"{float(source['pts']):.6f}",
                str(source.get("camera", "")),
                f"{image.width}x{image.height}",
                image.mode,
            ]
        )
        return "kf-" + hashlib.sha256(key.encode()).hexdigest()[:32]
    digest = hashlib.sha256(f"{image.mode}|{image.width}x{image.height}|".encode())
    digest.update(image.tobytes())
    return "px-" + digest.hexdigest()[:32]


def encode_jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    image = image if image.mode == "RGB" else image.convert("RGB")
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def jpeg_data_url(image: Image.Image, quality: int = 90) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(encode_jpeg(image, quality)).decode("ascii")


def video_data_url(frames: list[Image.Image], quality: int = 90) -> str:
    """vLLM's pre-sampled-frames video URL: ``data:video/jpeg;base64,<frame1>,<frame2>,...``."""
    parts = [base64.b64encode(encode_jpeg(f, quality)).decode("ascii") for f in frames]
    return "data:video/jpeg;base64," + ",".join(parts)


def video_timing(block: Mapping[str, Any]) -> tuple[float, list[float]]:
    """(rate of the sampled frames in frames/s, timestamp of each frame in seconds).

    Timestamps win when present (rate from their mean spacing); else ``fps`` (default 2) from t=0.
    """
    n = len(block["video"])
    stamps = block.get("timestamps")
    if stamps is not None:
        stamps = [float(t) for t in stamps]
        span = stamps[-1] - stamps[0]
        rate = (n - 1) / span if n > 1 and span > 0 else float(block.get("fps") or 2.0)
        return rate, stamps
    rate = float(block.get("fps") or 2.0)
    return rate, [i / rate for i in range(n)]


_VIRTUAL_FPS = 1000.0  # frame-index grid (1 ms) for videos that carry no source frame numbers


def video_server_metadata(block: Mapping[str, Any]) -> dict[str, Any]:
    """vLLM's metadata of a pre-sampled (JPEG-sequence) video, so the server places the frames in time.

    Without it vLLM assumes 1 frame/s from 0 s. Chosen so that both conventions hold: Qwen3-VL prints
    ``frames_indices / fps`` as each frame's time (the block's real timestamps), Qwen2.5-VL spaces its
    temporal positions by ``len(frames_indices) / total_num_frames * fps`` (the block's sampling rate).
    Source frame numbers are kept when the block has them (`frames.blocks.video_block`), else times are
    put on a 1 ms grid.
    """
    rate, stamps = video_timing(block)
    n = len(stamps)
    source = block.get("video_metadata") or {}
    indices = source.get("frames_indices") or block.get("frames_indices")
    fps = source.get("fps") or block.get("raw_fps")
    if not (fps and indices is not None and len(indices) == n and all(float(i).is_integer() for i in indices)):
        fps, indices = _VIRTUAL_FPS, [round(t * _VIRTUAL_FPS) for t in stamps]
    total = max(n, round(n * float(fps) / rate))
    return {"fps": float(fps), "frames_indices": [int(i) for i in indices], "total_num_frames": int(total),
            "duration": total / float(fps)}


def has_video(conversation: Conversation) -> bool:
    return any(
        not isinstance(m.get("content"), str) and any(b.get("type") == "video" for b in m.get("content") or [])
        for m in conversation
    )


def media_io_kwargs(conversation: Conversation) -> MediaIoKwargs | None:
    """vLLM's per-request ``media_io_kwargs`` for the conversation's videos, or None without videos.

    vLLM applies one setting to every video of a request: with several videos of different timing,
    raises ValueError (split them over requests)."""
    found: list[dict[str, Any]] = []
    for message in conversation:
        content = message.get("content")
        if not isinstance(content, str):
            found.extend(video_server_metadata(b) for b in content if b.get("type") == "video")
    if not found:
        return None
    if any(md != found[0] for md in found[1:]):
        raise ValueError(
            "vLLM servers take one video timing per request, but this conversation has videos of different "
            "timing: send them in separate requests"
        )
    return {"video": found[0]}


def to_openai_messages(conversation: Conversation, *, jpeg_quality: int = 90) -> list[dict[str, Any]]:
    """Qwen-VL blocks -> OpenAI chat parts (images and videos as JPEG data URLs)."""
    out: list[dict[str, Any]] = []
    for message in conversation:
        content = message.get("content")
        if isinstance(content, str):
            out.append({"role": message["role"], "content": content})
            continue
        parts: list[dict[str, Any]] = []
        for block in content:
            kind = block["type"]
            if kind == "text":
                parts.append({"type": "text", "text": block["text"]})
            elif kind == "image":
                parts.append(
                    {"type": "image_url", "image_url": {"url": jpeg_data_url(block["image"], jpeg_quality)}}
                )
            elif kind == "video":
                parts.append(
                    {
                        "type": "video_url",
                        "video_url": {"url": video_data_url(list(block["video"]), jpeg_quality)},
                    }
                )
            elif kind in ("image_url", "video_url"):
                parts.append({k: v for k, v in block.items() if k in ("type", kind)})
            else:  # pragma: no cover - check_conversation rejects it first
                raise ValueError(f"unsupported block type {kind!r}")
        out.append({"role": message["role"], "content": parts})
    return out


def to_vllm_messages(conversation: Conversation, *, jpeg_quality: int = 90) -> list[dict[str, Any]]:
    """Qwen-VL blocks -> vLLM ``LLM.chat`` parts: ``image_pil`` with a stable uuid; videos as JPEG sequences."""
    out: list[dict[str, Any]] = []
    for message in conversation:
        content = message.get("content")
        if isinstance(content, str):
            out.append({"role": message["role"], "content": content})
            continue
        parts: list[dict[str, Any]] = []
        for block in content:
            kind = block["type"]
            if kind == "text":
                parts.append({"type": "text", "text": block["text"]})
            elif kind == "image":
                image = block["image"]
                parts.append(
                    {
                        "type": "image_pil",
                        "image_pil": image if image.mode == "RGB" else image.convert("RGB"),
                        "uuid": image_uuid(block),
                    }
                )
            elif kind == "video":
                parts.append(
                    {
                        "type": "video_url",
                        "video_url": {"url": video_data_url(list(block["video"]), jpeg_quality)},
                    }
                )
            elif kind in ("image_url", "video_url"):
                parts.append({k: v for k, v in block.items() if k in ("type", kind, "uuid")})
        out.append({"role": message["role"], "content": parts})
    return out


def to_hf_messages(
    conversation: Conversation,
) -> tuple[list[dict[str, Any]], list[Image.Image], list[Mapping[str, Any]]]:
    """Qwen-VL blocks -> (messages for ``apply_chat_template``, images in order, video blocks in order)."""
    messages: list[dict[str, Any]] = []
    images: list[Image.Image] = []
    videos: list[Mapping[str, Any]] = []
    for message in conversation:
        content = message.get("content")
        if isinstance(content, str):
            messages.append({"role": message["role"], "content": [{"type": "text", "text": content}]})
            continue
        parts: list[dict[str, Any]] = []
        for block in content:
            kind = block["type"]
            if kind == "text":
                parts.append({"type": "text", "text": block["text"]})
            elif kind == "image":
                image = block["image"]
                images.append(image if image.mode == "RGB" else image.convert("RGB"))
                parts.append({"type": "image"})
            elif kind == "video":
                videos.append(block)
                parts.append({"type": "video"})
            else:
                raise ValueError(
                    f"block type {kind!r} needs a server: the transformers backend takes PIL images and frame lists"
                )
        messages.append({"role": message["role"], "content": parts})
    return messages, images, videos
