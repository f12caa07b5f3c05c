"""Bit-exact frames for every backend, codec and GOP, against an independent sequential PyAV decode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from frames_helpers import (
    FRONT,
    LENGTHS,
    TOP,
    as_hwc,
    cached_dataset,
    image_reference,
    parquet_times,
    reference,
)

from lerobot_keyframes.dataset import load_episodes
from lerobot_keyframes.frames import Frames, make_frame_provider

VARIANTS = [("av1", 2), ("av1", 30), ("av1", 250), ("h264", 2), ("h264", 30), ("h264", 250)]
BACKENDS = ["torchcodec", "pyav", "ffmpeg"]


@pytest.mark.parametrize("codec,gop", VARIANTS, ids=[f"{c}-gop{g}" for c, g in VARIANTS])
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_frame_bit_exact(backend: str, codec: str, gop: int) -> None:
    """Every frame of every episode (two per file: from_timestamp > 0; two files; last frame of each
    file), requested in scrambled order with duplicates, equals the reference decode bit for bit."""
    root = cached_dataset(codec, gop)
    provider = make_frame_provider(root, video_backend=backend, cache_mb=0)
    rng = np.random.default_rng(gop)
    for episode, length in enumerate(LENGTHS):
        ref = reference(root, FRONT, episode)
        times = parquet_times(episode)
        order = list(rng.permutation(length)) + [length - 1, 0, length - 1]
        frames = provider.frames_at(episode, [times[i] for i in order])
        assert isinstance(frames.data, torch.Tensor) and frames.data.dtype == torch.uint8 and frames.complete
        assert tuple(frames.data.shape) == (len(order), 3, 96, 128)
        assert frames.indices == tuple(int(i) for i in order)
        assert frames.video_backend == backend
        for k, i in enumerate(order):
            assert np.array_equal(as_hwc(frames, k), ref[i]), f"episode {episode} frame {i} differs"
            assert frames.timestamps[k] == pytest.approx(i / 30, abs=1e-9)
            assert frames.requested[k] == times[i]


def test_auto_uses_torchcodec_and_matches() -> None:
    root = cached_dataset("av1", 2)
    provider = make_frame_provider(root)
    frames = provider.frames_at(1, parquet_times(1)[::7])
    assert frames.video_backend == "torchcodec"
    ref = reference(root, FRONT, 1)
    for k, i in enumerate(range(0, LENGTHS[1], 7)):
        assert np.array_equal(as_hwc(frames, k), ref[i])


def test_from_timestamp_shift_and_pts() -> None:
    """Episode 1 starts 40 frames into file-000: its t=0 is the file's frame 40, pts 40/30 s."""
    root = cached_dataset("h264", 30)
    provider = make_frame_provider(root, video_backend="torchcodec")
    frames = provider.frames_at(1, [0.0, float(np.float32(49 / 30))])
    assert frames.pts == pytest.approx((40 / 30, 89 / 30), abs=1e-9)
    assert frames.timestamps == pytest.approx((0.0, 49 / 30), abs=1e-9)
    assert frames.indices == (0, 49)
    assert frames.file.endswith("file-000.mp4")
    ref = reference(root, FRONT, 1)
    assert np.array_equal(as_hwc(frames, 0), ref[0]) and np.array_equal(as_hwc(frames, 1), ref[49])


def test_row_dict_from_episode_table_matches_index() -> None:
    """A row of the `load_episodes` table is self-contained: decoding from it equals decoding by index."""
    root = cached_dataset("av1", 2)
    table = load_episodes(root)
    provider = make_frame_provider(table, video_backend="pyav")
    row = table[2]
    times = parquet_times(2)[::5]
    by_row = provider.frames_at(row, times)
    by_index = make_frame_provider(root, video_backend="pyav").frames_at(2, times)
    assert np.array_equal(by_row.data.numpy(), by_index.data.numpy())
    assert by_row.pts == by_index.pts


def test_frames_at_many_merges_files() -> None:
    """Requests of two episodes in the same mp4 come back in order, and the file is decoded once."""
    root = cached_dataset("av1", 2)
    provider = make_frame_provider(root, video_backend="torchcodec", cache_mb=0)
    out = provider.frames_at_many([(0, [0.0, 1.0], None), (1, [0.5], None), (0, [1.0], FRONT)])
    assert [len(f) for f in out] == [2, 1, 1]
    assert provider.stats().decode_calls == {"torchcodec": 1}
    assert np.array_equal(out[0].data[1].numpy(), out[2].data[0].numpy())
    assert np.array_equal(as_hwc(out[1], 0), reference(root, FRONT, 1)[15])


def test_image_camera_exact_and_uint8() -> None:
    root = cached_dataset("av1", 2, image_camera="top")
    provider = make_frame_provider(root, camera_key=TOP)
    assert provider.camera_keys == [FRONT, TOP]
    assert provider.default_camera == TOP
    times = parquet_times(1)
    frames = provider.frames_at(1, [times[3], times[0], times[-1]])
    assert frames.video_backend == "image"
    assert frames.data.dtype.is_floating_point is False and tuple(frames.data.shape) == (3, 3, 96, 128)
    for k, i in enumerate([3, 0, LENGTHS[1] - 1]):
        assert np.array_equal(as_hwc(frames, k), image_reference(LENGTHS[0] + i))
    assert frames.indices == (3, 0, LENGTHS[1] - 1)
    assert frames.pts == (times[3], times[0], times[-1])


def test_to_pil_and_frames_type() -> None:
    root = cached_dataset("av1", 2)
    frames = make_frame_provider(root).frames_at(0, [0.0, 0.5])
    assert isinstance(frames, Frames) and len(frames) == 2
    images = frames.to_pil()
    assert [im.size for im in images] == [(128, 96), (128, 96)]
    assert np.array_equal(np.asarray(images[1]), reference(root, FRONT, 0)[15])
    empty = make_frame_provider(root).frames_at(0, [])
    assert len(empty) == 0 and empty.data.shape[0] == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_many_sparse_frames_in_one_call(backend: str) -> None:
    """Every other frame of two episodes in one batch: more runs than one ffmpeg select expression takes,
    runs that cross keyframes, and two episodes of one file merged."""
    root = cached_dataset("h264", 30)
    provider = make_frame_provider(root, video_backend=backend, cache_mb=0)
    requests = [(e, parquet_times(e)[::2], None) for e in (0, 1)]
    for (episode, _times, _), frames in zip(requests, provider.frames_at_many(requests)):
        ref = reference(root, FRONT, episode)
        assert frames.indices == tuple(range(0, LENGTHS[episode], 2))
        for k, i in enumerate(frames.indices):
            assert np.array_equal(as_hwc(frames, k), ref[i])
