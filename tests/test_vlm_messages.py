"""Message dialects, image uuids, schema helpers and the tolerant JSON extractor (no model needed)."""

from __future__ import annotations

import base64
import io
import json

import jsonschema
import pytest
from PIL import Image

from lerobot_keyframes.vlm import UnboundedSchemaError, VlmConfig, estimate_max_tokens, make_xgrammar_safe
from lerobot_keyframes.vlm.jsonparse import extract_json, parse_answer
from lerobot_keyframes.vlm.messages import (
    check_conversation,
    image_uuid,
    media_io_kwargs,
    to_hf_messages,
    to_openai_messages,
    to_vllm_messages,
    video_server_metadata,
    video_timing,
)
from lerobot_keyframes.vlm.schema import estimate_max_chars
from lerobot_keyframes.vlm.types import FailureKind


def img(color: tuple[int, int, int], size: tuple[int, int] = (40, 30), mode: str = "RGB") -> Image.Image:
    return Image.new(mode, size, color if mode == "RGB" else color[0])


def conversation() -> list[dict]:
    return [
        {"role": "system", "content": "be precise"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {
                    "type": "image",
                    "image": img((250, 0, 0)),
                    "source": {"file": "/data/ds/videos/a.mp4", "pts": 1.5, "camera": "front"},
                },
                {"type": "image", "image": img((0, 0, 0), mode="L")},
                {
                    "type": "video",
                    "video": [img((0, 9 * i, 0)) for i in range(3)],
                    "timestamps": [1.0, 1.5, 2.0],
                },
                {"type": "image_url", "image_url": {"url": "https://example.invalid/x.png"}},
            ],
        },
    ]


def test_openai_dialect_uses_jpeg_data_urls() -> None:
    out = to_openai_messages(conversation(), jpeg_quality=80)
    assert out[0] == {"role": "system", "content": "be precise"}
    parts = out[1]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "image_url", "video_url", "image_url"]
    url = parts[1]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert decoded.format == "JPEG" and decoded.size == (40, 30) and decoded.mode == "RGB"
    video = parts[3]["video_url"]["url"]
    assert video.startswith("data:video/jpeg;base64,") and len(video.split(",")) == 1 + 3
    assert parts[4] == {"type": "image_url", "image_url": {"url": "https://example.invalid/x.png"}}
    json.dumps(out)  # plain JSON, ready for the wire


def test_vllm_dialect_uses_pil_blocks_with_stable_uuids() -> None:
    parts = to_vllm_messages(conversation())[1]["content"]
    assert parts[1]["type"] == "image_pil" and parts[1]["image_pil"].mode == "RGB"
    assert parts[1]["uuid"].startswith("kf-") and parts[2]["uuid"].startswith("px-")
    assert parts[2]["image_pil"].mode == "RGB"  # grayscale converted
    assert to_vllm_messages(conversation())[1]["content"][1]["uuid"] == parts[1]["uuid"]


def test_image_uuid_from_provenance_or_pixels() -> None:
    src = {"file": "/data/ds/videos/a.mp4", "pts": 1.5, "camera": "front"}
    a = image_uuid({"image": img((1, 2, 3)), "source": src})
    assert a == image_uuid({"image": img((1, 2, 3)), "source": dict(src)})
    assert a != image_uuid({"image": img((1, 2, 3)), "source": {**src, "pts": 1.6}})
    assert a != image_uuid({"image": img((1, 2, 3), (80, 60)), "source": src})  # resized frame: new id
    assert a != image_uuid({"image": img((1, 2, 3)), "source": {**src, "file": "/data/ds/videos/b.mp4"}})
    # a file relative to an unknown root (a keyframes table from the Hub) could be any dataset's: pixels decide
    relative = {**src, "file": "videos/a.mp4"}
    assert image_uuid({"image": img((1, 2, 3)), "source": relative}).startswith("px-")
    assert image_uuid({"image": img((1, 2, 3)), "source": relative}) != image_uuid(
        {"image": img((1, 2, 4)), "source": relative})
    assert image_uuid({"image": img((5, 5, 5))}) == image_uuid({"image": img((5, 5, 5))})
    assert image_uuid({"image": img((5, 5, 5))}) != image_uuid({"image": img((5, 5, 6))})


def test_hf_dialect_collects_images_and_videos_in_order() -> None:
    messages, images, videos = to_hf_messages(
        conversation()[:1] + [{"role": "user", "content": conversation()[1]["content"][:4]}]
    )
    assert [p["type"] for p in messages[1]["content"]] == ["text", "image", "image", "video"]
    assert len(images) == 2 and images[1].mode == "RGB" and len(videos) == 1
    with pytest.raises(ValueError, match="needs a server"):
        to_hf_messages(conversation())


def test_video_timing() -> None:
    rate, stamps = video_timing({"video": [0, 1, 2], "timestamps": [1.0, 1.5, 2.0], "fps": 30})
    assert rate == pytest.approx(2.0) and stamps == [1.0, 1.5, 2.0]
    assert video_timing({"video": [0, 1], "fps": 4}) == (4.0, [0.0, 0.25])
    assert video_timing({"video": [0]}) == (2.0, [0.0])


@pytest.mark.parametrize(
    "bad, where",
    [
        ("just text", "conversation 0: expected a non-empty list"),
        ([{"role": "robot", "content": "x"}], "message 0: needs a 'role'"),
        ([{"role": "user", "content": [{"type": "audio"}]}], "message 0, block 0"),
        ([{"role": "user", "content": [{"type": "image", "image": "cat.png"}]}], "must be PIL images"),
        (
            [
                {
                    "role": "user",
                    "content": [{"type": "video", "video": [img((1, 1, 1))] * 2, "timestamps": [0.0]}],
                }
            ],
            "2 frames but 1 timestamps",
        ),
    ],
)
def test_bad_conversations_are_named(bad: object, where: str) -> None:
    with pytest.raises(ValueError, match=where):
        check_conversation(bad, 0)  # type: ignore[arg-type]


def test_make_xgrammar_safe_bounds_everything() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "short": {"type": "string", "maxLength": 5, "minLength": 1},
            "kind": {"type": "string", "enum": ["a", "b"]},
            "n": {"type": "integer"},
            "x": {"type": "number", "maximum": 2},
            "tags": {"type": "array", "items": {"type": "string"}},
            "sub": {
                "anyOf": [{"type": "object", "properties": {"k": {"type": "integer"}}}, {"type": "null"}]
            },
        },
        "required": ["name"],
    }
    with pytest.raises(UnboundedSchemaError, match=r"\$/name: string without maxLength"):
        estimate_max_chars({**schema, "additionalProperties": False})
    safe = make_xgrammar_safe(schema, max_string_length=50, max_items=4)
    props = safe["properties"]
    assert props["name"] == {"type": "string", "pattern": "^[ -!#-\\[\\]-~]{0,50}$"}
    assert props["short"] == {"type": "string", "pattern": "^[ -!#-\\[\\]-~]{1,5}$"}
    assert props["kind"] == {"type": "string", "enum": ["a", "b"]}
    assert props["n"]["minimum"] == 0 and props["n"]["maximum"] == 1_000_000
    assert props["x"]["maximum"] == 2 and "minimum" in props["x"]
    assert props["tags"]["maxItems"] == 4
    assert safe["additionalProperties"] is False and props["sub"]["anyOf"][0]["additionalProperties"] is False
    assert schema["properties"]["name"] == {"type": "string"}  # input untouched
    # the worst case really is the worst case: a maximal answer fits
    longest = {
        "name": "~" * 50,
        "short": "~" * 5,
        "kind": "a",
        "n": 1_000_000,
        "x": -1_000_000.0,
        "tags": ["~" * 50] * 4,
        "sub": {"k": 1_000_000},
    }
    jsonschema.validate(longest, safe)
    assert len(json.dumps(longest, separators=(",", ":"))) <= estimate_max_chars(safe)
    assert estimate_max_tokens(safe) >= estimate_max_chars(safe)


def test_unbounded_schemas_are_refused_with_a_path() -> None:
    with pytest.raises(UnboundedSchemaError, match=r"\$/a\[0\]: integer without minimum"):
        estimate_max_chars(
            {
                "type": "object",
                "properties": {"a": {"type": "array", "items": {"type": "integer"}, "maxItems": 2}},
                "additionalProperties": False,
            }
        )
    with pytest.raises(UnboundedSchemaError, match="additional properties"):
        estimate_max_chars({"type": "object", "properties": {}})
    with pytest.raises(UnboundedSchemaError, match="recursive"):
        estimate_max_chars(
            {
                "$defs": {"n": {"type": "array", "maxItems": 2, "items": {"$ref": "#/$defs/n"}}},
                "$ref": "#/$defs/n",
            }
        )


def test_extract_json_tolerates_prose_and_fences() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    assert extract_json('{"a": 1}') == {"a": 1}
    assert extract_json('Sure!\n```json\n{"a": 2}\n```') == {"a": 2}
    assert extract_json('first {"b": 0} then {"a": 3} end', schema) == {"a": 3}
    with pytest.raises(ValueError):
        extract_json("no json here")
    value, failure = parse_answer('{"a": "x"}', schema, enforced=True, finish_reason="stop")
    assert value is None and failure.kind is FailureKind.SCHEMA_MISMATCH and "at a" in failure.message
    value, failure = parse_answer('{"a": ', schema, enforced=True, finish_reason="length")
    assert failure.kind is FailureKind.TRUNCATED
    value, failure = parse_answer("nothing", schema, enforced=False, finish_reason="stop")
    assert failure.kind is FailureKind.INVALID_JSON


def test_config_validates_and_names_flags() -> None:
    with pytest.raises(ValueError, match="--vlm.backend='tgi'"):
        VlmConfig(backend="tgi")
    with pytest.raises(ValueError, match="--vlm.structured_output"):
        VlmConfig(structured_output="maybe")
    cfg = VlmConfig(api_base="http://a:1/v1/, http://b:2/v1")
    assert cfg.api_bases == ["http://a:1/v1", "http://b:2/v1"]
    assert cfg.replace(max_new_tokens=5).max_new_tokens == 5
    with pytest.raises(AttributeError):
        cfg.model_id = "x"  # type: ignore[misc]
    assert "sk-secret" not in repr(VlmConfig(api_key="sk-secret"))


def _server_times(md: dict) -> tuple[list[float], float]:
    """What vLLM's Qwen3-VL prints as frame times, and Qwen2.5-VL's sampled rate (transformers' rule)."""
    return [i / md["fps"] for i in md["frames_indices"]], len(md["frames_indices"]) / md["total_num_frames"] * md["fps"]


def test_video_server_metadata_places_frames_at_their_times() -> None:
    frames = [img((0, 0, i)) for i in range(4)]
    plain = {"type": "video", "video": frames, "timestamps": [1.0, 1.5, 2.0, 2.5]}
    md = video_server_metadata(plain)
    times, rate = _server_times(md)
    assert times == pytest.approx([1.0, 1.5, 2.0, 2.5], abs=1e-3) and rate == pytest.approx(2.0, rel=1e-3)
    assert md["total_num_frames"] >= 4 and md["duration"] == pytest.approx(md["total_num_frames"] / md["fps"])
    # a block from the keyframe engine keeps the source frame numbers (30 fps episode, frames 30, 45, 60, 75)
    sourced = dict(plain, video_metadata={"fps": 30.0, "frames_indices": [30, 45, 60, 75], "total_num_frames": 300})
    md = video_server_metadata(sourced)
    assert md["fps"] == 30.0 and md["frames_indices"] == [30, 45, 60, 75]
    times, rate = _server_times(md)
    assert times == pytest.approx([1.0, 1.5, 2.0, 2.5]) and rate == pytest.approx(2.0, rel=0.02)
    # fps only (no timestamps): from 0 s at that rate
    times, rate = _server_times(video_server_metadata({"type": "video", "video": frames, "fps": 4.0}))
    assert times == pytest.approx([0.0, 0.25, 0.5, 0.75]) and rate == pytest.approx(4.0)


def test_media_io_kwargs_per_request() -> None:
    assert media_io_kwargs(conversation()[:1]) is None
    video = {"type": "video", "video": [img((0, 0, 0))] * 2, "timestamps": [0.0, 0.5]}
    one = [{"role": "user", "content": [{"type": "text", "text": "what happens?"}, video]}]
    assert media_io_kwargs(one) == {"video": video_server_metadata(video)}
    other = dict(video, timestamps=[3.0, 4.0])
    with pytest.raises(ValueError, match="separate requests"):
        media_io_kwargs([{"role": "user", "content": [video, other]}])
