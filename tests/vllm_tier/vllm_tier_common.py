"""Shared inputs of the vLLM tier tests."""

from __future__ import annotations

from PIL import Image

from lerobot_keyframes.vlm import make_xgrammar_safe

# vLLM's CPU attention needs head_dim 64 (ENVIRONMENT.md); the rest matches the recipe there, plus one
# video per prompt (sent as a JPEG frame sequence).
ENGINE = dict(
    max_model_len=2048, limit_mm_per_prompt={"image": 2, "video": 1}, max_num_seqs=8, enforce_eager=True
)

SCHEMA = make_xgrammar_safe(
    {
        "type": "object",
        "properties": {
            "label": {"type": "string", "maxLength": 16},
            "count": {"type": "integer", "minimum": 0, "maximum": 99},
            "spans": {
                "type": "array",
                "items": {"type": "number", "minimum": 0, "maximum": 30},
                "maxItems": 3,
            },
        },
        "required": ["label", "count", "spans"],
    }
)


def image(color: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> Image.Image:
    return Image.new("RGB", size, color)


def batch(n: int = 8) -> list[list[dict]]:
    convs: list[list[dict]] = []
    for i in range(n):
        content: list[dict] = []
        for j in range(i % 3):  # 0, 1 or 2 images
            content.append(
                {
                    "type": "image",
                    "image": image(((40 * i) % 256, 30 * j, 100)),
                    "source": {"file": f"videos/ep{i}.mp4", "pts": 0.5 * j, "camera": "front"},
                }
            )
        content.append({"type": "text", "text": f"Question {i}: " + "what happens " * (i + 1)})
        convs.append([{"role": "user", "content": content}])
    return convs


def video_conversation(timestamps: tuple[float, ...] | list[float] = (1.0, 1.5, 2.0, 2.5)) -> list[dict]:
    frames = [image((50 * i, 80, 0)) for i in range(len(timestamps))]
    return [
        {
            "role": "user",
            "content": [
                {"type": "video", "video": frames, "fps": 2.0, "timestamps": list(timestamps)},
                {"type": "text", "text": "Split the clip into subtasks."},
            ],
        }
    ]
