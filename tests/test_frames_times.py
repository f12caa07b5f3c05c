"""The nearest-frame rule, tolerances, and uniform episode sampling."""

from __future__ import annotations

import numpy as np
import pytest
from frames_helpers import FRONT, LENGTHS, as_hwc, cached_dataset, parquet_times, reference

from lerobot_keyframes.frames import FrameTimeError, make_frame_provider

PERIOD = 1 / 30


@pytest.mark.parametrize("backend", ["torchcodec", "pyav", "ffmpeg"])
def test_float32_times_just_below_and_above_a_frame(backend: str) -> None:
    """float32 parquet times a hair below / above a frame's pts (the ~40% of lerobot-written times that
    make `get_frames_played_at` and `ffmpeg -ss` pick a neighbour) land on their own frame."""
    root = cached_dataset("av1", 2)
    provider = make_frame_provider(root, video_backend=backend, cache_mb=0)
    ref = reference(root, FRONT, 1)  # episode 1: from_timestamp = 40/30 s, so from_timestamp + t rounds too
    frames_idx = [1, 7, 13, 29, LENGTHS[1] - 1]
    times, expect = [], []
    for i in frames_idx:
        exact = np.float32(i / 30)
        for t in (np.nextafter(exact, np.float32(-1)), exact, np.nextafter(exact, np.float32(10))):
            times.append(float(t))
            expect.append(i)
    frames = provider.frames_at(1, times)
    assert frames.indices == tuple(expect)
    for k, i in enumerate(expect):
        assert np.array_equal(as_hwc(frames, k), ref[i])


def test_within_tolerance_maps_to_nearest_and_beyond_is_an_error() -> None:
    root = cached_dataset("h264", 2)
    provider = make_frame_provider(root, video_backend="torchcodec")
    frames = provider.frames_at(2, [10 * PERIOD - 0.3 * PERIOD, 10 * PERIOD + 0.3 * PERIOD, 0.39 * PERIOD])
    assert frames.indices == (10, 10, 0)
    assert frames.timestamps == pytest.approx((10 * PERIOD, 10 * PERIOD, 0.0))
    with pytest.raises(FrameTimeError) as info:
        provider.frames_at(2, [0.0, 10 * PERIOD + 0.45 * PERIOD])
    err = info.value
    assert err.episode == 2 and err.camera == FRONT and err.time == pytest.approx(10.45 * PERIOD)
    assert err.file.endswith("file-001.mp4")
    assert "no frame within" in str(err) and "episode 2" in str(err) and FRONT in str(err)


def test_tolerance_is_configurable() -> None:
    root = cached_dataset("h264", 2)
    strict = make_frame_provider(root, video_backend="pyav", tolerance_s=1e-4)
    with pytest.raises(FrameTimeError):
        strict.frames_at(0, [5 * PERIOD + 0.01])
    assert strict.frames_at(0, [float(np.float32(5 / 30))]).indices == (5,)
    loose = make_frame_provider(root, video_backend="pyav", tolerance_frames=0.5)
    assert loose.frames_at(0, [5.49 * PERIOD]).indices == (5,)


def test_times_outside_the_episode() -> None:
    root = cached_dataset("av1", 2)
    provider = make_frame_provider(root)
    last = parquet_times(0)[-1]
    # within tolerance of the ends: clamps to the first / last frame of the episode
    assert provider.frames_at(0, [-0.3 * PERIOD, last + 0.3 * PERIOD]).indices == (0, LENGTHS[0] - 1)
    # beyond: an error naming the time, even though episode 1's frames follow in the same file
    for bad in (-0.5 * PERIOD, last + PERIOD, float("nan")):
        with pytest.raises(FrameTimeError) as info:
            provider.frames_at(0, [0.0, bad])
        assert info.value.episode == 0 and "outside the episode" in str(info.value)


@pytest.mark.parametrize("n", [1, 2, 8, 46, 100])
def test_video_for_episode_uniform_by_frame(n: int) -> None:
    root = cached_dataset("av1", 2)
    provider = make_frame_provider(root)
    frames = provider.video_for_episode(2, n)
    length = LENGTHS[2]
    k = min(n, length)
    assert len(frames) == k
    expected = [0] if k == 1 else [int(round(x)) for x in np.linspace(0, length - 1, k)]
    assert list(frames.indices) == expected
    if k > 1:
        assert frames.indices[0] == 0 and frames.indices[-1] == length - 1
    # requested times are the exact parquet float32 values of those frames
    times = parquet_times(2)
    assert list(frames.requested) == [times[i] for i in expected]
    ref = reference(root, FRONT, 2)
    for pos, i in enumerate(expected):
        assert np.array_equal(as_hwc(frames, pos), ref[i])


def test_video_for_episode_rejects_zero() -> None:
    provider = make_frame_provider(cached_dataset("av1", 2))
    with pytest.raises(ValueError):
        provider.video_for_episode(0, 0)
