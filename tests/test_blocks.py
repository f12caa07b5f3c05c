"""Qwen-VL content blocks, contact sheets, H.264 clips and vision-token accounting (checked against transformers)."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

from lerobot_keyframes.frames.blocks import (
    FAMILIES,
    block_tokens,
    contact_sheet_blocks,
    contact_sheets,
    episode_clip,
    fit_to_token_budget,
    image_blocks,
    smart_resize,
    video_block,
    video_tokens,
    video_url_block,
    vision_tokens,
)
from lerobot_keyframes.frames.policies import fps
from lerobot_keyframes.frames.types import Frames

SIZES = [(320, 240), (640, 480), (1280, 720), (1920, 1080), (64, 48), (20, 600), (3000, 2000), (27, 29)]


def _frames(n: int = 6, size: tuple[int, int] = (96, 64), episode: int = 3, camera: str = "front") -> Frames:
    rng = np.random.default_rng(n)
    data = torch.from_numpy(rng.integers(0, 255, (n, 3, size[1], size[0]), dtype=np.uint8))
    idx = tuple(range(0, 15 * n, 15))
    times = tuple(float(np.float32(i / 30)) for i in idx)
    return Frames(data=data, requested=times, timestamps=times, pts=tuple(10.0 + t for t in times), indices=idx,
                  camera=camera, episode_index=episode, file="videos/front/chunk-000/file-000.mp4")


# -- token accounting vs the real processors ---------------------------------------------------------------
@pytest.fixture(scope="module")
def processors():
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    def image(family):
        f = FAMILIES[family]
        return Qwen2VLImageProcessor(patch_size=f.patch_size, merge_size=f.merge_size,
                                     size={"shortest_edge": f.min_pixels, "longest_edge": f.max_pixels})

    q2, q3 = FAMILIES["qwen2_5_vl"], FAMILIES["qwen3_vl"]
    return {
        "image": {"qwen2_5_vl": image("qwen2_5_vl"), "qwen3_vl": image("qwen3_vl")},
        "video": {
            "qwen2_5_vl": Qwen2VLVideoProcessor(size={"shortest_edge": q2.video_min_pixels,
                                                      "longest_edge": q2.video_max_pixels}),
            "qwen3_vl": Qwen3VLVideoProcessor(size={"shortest_edge": q3.video_min_pixels,
                                                    "longest_edge": q3.video_max_pixels}),
        },
    }


def _image_tokens(processor, width, height):
    grid = processor(images=[np.zeros((height, width, 3), np.uint8)], return_tensors="pt")["image_grid_thw"][0]
    return int(grid.prod()) // 4, (int(grid[1]) * processor.patch_size, int(grid[2]) * processor.patch_size)


def test_smart_resize_matches_transformers():
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize as hf_smart_resize

    rng = np.random.default_rng(0)
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(10, 4000, 2))
        if max(h, w) / min(h, w) > 200:
            continue
        for factor, lo, hi in ((28, 3136, 12845056), (32, 65536, 16777216), (28, 3136, 200704)):
            assert smart_resize(h, w, factor, lo, hi) == hf_smart_resize(h, w, factor, lo, hi)


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
def test_vision_tokens_match_the_image_processor(processors, family):
    for width, height in SIZES:
        expected, _ = _image_tokens(processors["image"][family], width, height)
        assert vision_tokens(width, height, family) == expected, (family, width, height)
    assert FAMILIES[family].factor == {"qwen2_5_vl": 28, "qwen3_vl": 32}[family]


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
def test_video_tokens_match_the_video_processor(processors, family):
    for (width, height), frames in zip(SIZES[:5], (2, 3, 8, 5, 16)):
        video = torch.zeros((frames, 3, height, width), dtype=torch.uint8)
        kwargs = {"cap_pixels_per_frame": False}
        out = processors["video"][family](videos=[video], do_sample_frames=False, return_tensors="pt", **kwargs)
        expected = int(out["video_grid_thw"][0].prod()) // 4
        assert video_tokens(width, height, frames, family) == expected, (family, width, height, frames)


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
def test_fit_to_token_budget_gives_processor_fixed_points(processors, family):
    images = [Image.new("RGB", s) for s in [(320, 240), (1280, 720), (640, 480), (96, 64)]]
    native = sum(vision_tokens(im.width, im.height, family) for im in images)
    assert fit_to_token_budget(images, native, family) == images  # already fits: untouched
    for budget in (native - 1, native // 2, 1200):
        fitted = fit_to_token_budget(images, budget, family)
        total = 0
        for original, im in zip(images, fitted):
            tokens, size = _image_tokens(processors["image"][family], im.width, im.height)
            assert size == (im.height, im.width)  # the processor keeps this size
            assert abs(im.width / im.height - original.width / original.height) < 0.35
            total += tokens
        assert total <= budget
        assert total == sum(vision_tokens(im.width, im.height, family) for im in fitted)
    with pytest.raises(ValueError, match="too small"):
        fit_to_token_budget(images, 10, family)


def test_block_tokens():
    frames = _frames(4, size=(320, 240))
    images = image_blocks(frames)
    assert block_tokens(images[0], "qwen2_5_vl") == vision_tokens(320, 240, "qwen2_5_vl") == 99
    assert block_tokens({**images[0], "max_pixels": 28 * 28 * 20}, "qwen2_5_vl") <= 20
    assert block_tokens(video_block(frames, raw_fps=30.0), "qwen3_vl") == video_tokens(320, 240, 4, "qwen3_vl")
    assert block_tokens({"type": "text", "text": "hi"}) == 0


# -- blocks ------------------------------------------------------------------------------------------------------
def test_image_blocks_keep_provenance():
    frames = _frames(3)
    blocks = image_blocks(frames)
    assert [b["type"] for b in blocks] == ["image"] * 3
    assert blocks[1]["image"].size == (96, 64)
    assert np.array_equal(np.asarray(blocks[1]["image"]), frames.data[1].permute(1, 2, 0).numpy())
    assert blocks[1]["source"] == {"file": frames.file, "camera": "front", "episode_index": 3,
                                   "pts": frames.pts[1], "timestamp": frames.requested[1]}


def test_video_block_carries_what_the_processors_need():
    from transformers.video_utils import VideoMetadata

    frames = _frames(6)
    from lerobot_keyframes.dataset import Episode

    block = video_block(frames, episode=Episode(episode_index=3, length=90, fps=30.0, timestamps=np.arange(90) / 30))
    assert len(block["video"]) == 6 and block["timestamps"] == list(frames.requested)
    meta = VideoMetadata(**block["video_metadata"])
    assert meta.sampled_fps == pytest.approx(block["fps"]) == pytest.approx(6 / 90 * 30)
    assert meta.timestamps == pytest.approx(block["timestamps"])  # Qwen3-VL's <t seconds> come from these
    assert block["frames_indices"] == list(frames.indices)
    assert block["source"]["pts"] == list(frames.pts)
    plain = video_block([Image.new("RGB", (8, 8))] * 2, [0.0, 0.5], raw_fps=30.0)
    assert plain["frames_indices"] == [0, 15]
    with pytest.raises(ValueError):
        video_block([Image.new("RGB", (8, 8))], [0.0])


def test_messages_pass_the_vlm_contract():
    from lerobot_keyframes.vlm.messages import check_conversation

    frames = _frames(5)
    content = [*image_blocks(frames), video_block(frames, raw_fps=30.0), *contact_sheet_blocks(frames),
               {"type": "text", "text": "what happens?"}]
    check_conversation([{"role": "user", "content": content}])


# -- contact sheets ----------------------------------------------------------------------------------------
def test_contact_sheets_layout_and_badges():
    frames = _frames(11, size=(320, 240))
    sheets = contact_sheets(frames, columns=4, tile_width=160, frames_per_sheet=6, gap=4)
    assert len(sheets) == 2  # 11 frames, at most 6 per sheet -> 6 + 5
    tile_h = 120
    # 6 frames, 4 columns -> 2 rows of 3; 5 frames -> 2 rows of 3 (no empty row, no 4-wide half-empty grid)
    for sheet in sheets:
        assert sheet.size == (3 * 160 + 4 * 4, 2 * tile_h + 3 * 4)
    # the badge of the first tile: black box with yellow text in the top-left corner of the tile
    corner = np.asarray(sheets[0])[7:18, 7:48].reshape(-1, 3).astype(int)
    black = (corner.max(axis=1) < 20).mean()
    yellow = ((corner[:, 0] > 200) & (corner[:, 1] > 200) & (corner[:, 2] < 120)).mean()
    assert black > 0.3 and yellow > 0.05
    one = contact_sheets(_frames(3), columns=5)
    assert len(one) == 1 and one[0].width < 4 * 256  # 3 tiles in one row, not 5 columns
    jpegs = contact_sheets(frames, frames_per_sheet=20, format="jpeg")
    assert len(jpegs) == 1 and jpegs[0][:2] == b"\xff\xd8"
    assert Image.open(io.BytesIO(jpegs[0])).size[0] == 4 * 256 + 5 * 4


def test_contact_sheet_blocks_list_their_times():
    frames = _frames(7)
    blocks = contact_sheet_blocks(frames, frames_per_sheet=4, tile_width=64)
    assert [len(b["source"]["timestamps"]) for b in blocks] == [4, 3]
    assert sum((b["source"]["timestamps"] for b in blocks), []) == list(frames.requested)
    assert blocks[0]["source"]["camera"] == "front" and blocks[0]["source"]["kind"] == "contact_sheet"


def test_contact_sheets_of_plain_images_need_times():
    with pytest.raises(ValueError):
        contact_sheets([Image.new("RGB", (32, 32))])
    assert len(contact_sheets([Image.new("RGB", (32, 32))] * 3, [0.0, 1.0, 2.0], tile_width=32)) == 1


# -- video_url: cached H.264 clips from real decoded frames ----------------------------------------------
class _CountingProvider:
    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def frames_at(self, *args, **kwargs):
        self.calls += 1
        return self.inner.frames_at(*args, **kwargs)


def test_video_url_clip_is_h264_cached_and_reused(sample_root, tmp_path):
    import av

    from lerobot_keyframes.dataset import load_episodes
    from lerobot_keyframes.frames.provider import make_frame_provider

    row = load_episodes(sample_root)[1]
    provider = _CountingProvider(make_frame_provider(sample_root))
    camera = row["camera_keys"][1]
    block = video_url_block(provider, row, camera, sample_fps=4.0, cache_dir=tmp_path)
    clip_path = block["source"]["clip"]
    assert block["type"] == "video_url" and block["video_url"]["url"].startswith("file://")
    assert block["timestamps"] == fps(4.0).timestamps(row).tolist()  # exact frame times, one every ~0.25 s
    assert np.abs(np.diff(block["timestamps"]) - 0.25).max() <= 1 / 30 + 1e-6
    with av.open(clip_path) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        decoded = list(container.decode(stream))
        assert len(decoded) == len(block["timestamps"])
        assert float(stream.average_rate) == pytest.approx(4.0)
    mtime = (tmp_path / clip_path.split("/")[-1]).stat().st_mtime_ns
    again = video_url_block(provider, row, camera, sample_fps=4.0, cache_dir=tmp_path, url="data")
    assert provider.calls == 1  # reused from the cache
    assert again["video_url"]["url"].startswith("data:video/mp4;base64,")
    assert (tmp_path / clip_path.split("/")[-1]).stat().st_mtime_ns == mtime
    other = episode_clip(provider, row, camera, sample_fps=2.0, max_frames=3, width=100, cache_dir=tmp_path)
    assert provider.calls == 2 and len(other.timestamps) == 3 and str(other.path) != clip_path
    with av.open(str(other.path)) as container:
        assert container.streams.video[0].codec_context.width == 100
    assert math.isclose(other.fps, 2.0)
