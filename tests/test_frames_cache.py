"""Frame cache accounting and byte bound, decoder LRU bound."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from frames_helpers import FRONT, as_hwc, cached_dataset, parquet_times, reference

from lerobot_keyframes.frames import FrameCache, make_frame_provider

FRAME_BYTES = 3 * 96 * 128


def test_second_request_is_served_from_cache() -> None:
    root = cached_dataset("av1", 2)
    provider = make_frame_provider(root, video_backend="torchcodec", cache_mb=8)
    times = parquet_times(1)[:10]
    first = provider.frames_at(1, times)
    s1 = provider.stats()
    assert (s1.cache.hits, s1.cache.misses, s1.cache.entries) == (0, 10, 10)
    assert s1.decoded_frames == {"torchcodec": 10} and s1.decode_calls == {"torchcodec": 1}
    second = provider.frames_at(1, times[::-1] + [times[0]])
    s2 = provider.stats()
    assert s2.cache.hits == 11 and s2.cache.misses == 10
    assert s2.decoded_frames == {"torchcodec": 10}  # nothing decoded again
    assert second.video_backend == "cache"
    assert torch.equal(second.data[0], first.data[9]) and torch.equal(second.data[10], first.data[0])
    assert s2.cache.hit_rate == pytest.approx(11 / 21)


def test_partial_hits_decode_only_the_rest() -> None:
    root = cached_dataset("av1", 2)
    provider = make_frame_provider(root, video_backend="pyav", cache_mb=8)
    provider.frames_at(0, [0.0, 0.5])
    frames = provider.frames_at(0, [0.0, 0.2, 0.5, 1.0])
    assert provider.stats().decoded_frames == {"pyav": 4}
    ref = reference(root, FRONT, 0)
    for k, i in enumerate([0, 6, 15, 30]):
        assert np.array_equal(as_hwc(frames, k), ref[i])


def test_cache_is_bounded_in_bytes_lru() -> None:
    root = cached_dataset("av1", 2)
    provider = make_frame_provider(root, cache_mb=(5 * FRAME_BYTES + 100) / 2**20)
    times = parquet_times(0)
    provider.frames_at(0, times[:8])  # larger than the cache: only the last 5 frames are copied in
    stats = provider.stats().cache
    assert stats.entries == 5 and stats.bytes == 5 * FRAME_BYTES and stats.evictions == 0
    provider.frames_at(0, times[8:10])  # two more: the two least recently used (frames 3, 4) go
    stats = provider.stats().cache
    assert stats.entries == 5 and stats.bytes == 5 * FRAME_BYTES and stats.evictions == 2
    provider.cache.reset_stats()
    provider.frames_at(0, times[5:10])  # the 5 most recent are cached
    assert provider.stats().cache.hits == 5
    provider.frames_at(0, times[3:4])  # evicted
    assert provider.stats().cache.misses == 1


@pytest.mark.parametrize("options", [{"cache_mb": 0}, {}], ids=["cache_mb=0", "default"])
def test_cache_disabled(options: dict) -> None:
    """Off by default: single-pass callers (datasets.map) must not pay a copy per decoded frame."""
    provider = make_frame_provider(cached_dataset("av1", 2), **options)
    first = provider.frames_at(0, [0.0])
    second = provider.frames_at(0, [0.0])
    stats = provider.stats()
    assert stats.cache.entries == 0 and stats.decoded_frames["torchcodec"] == 2
    assert second.video_backend == "torchcodec" and torch.equal(first.data, second.data)


def test_frame_cache_unit_lru_and_copies() -> None:
    cache = FrameCache(max_bytes=3 * 12)
    batch = torch.arange(4 * 12, dtype=torch.uint8).reshape(4, 3, 2, 2)
    for i in range(3):
        cache.put(("f", i), batch[i])
    stored = cache.get(("f", 0))
    assert stored is not None and stored.untyped_storage().nbytes() == 12  # owns its memory, not the batch
    cache.put(("f", 3), batch[3])  # evicts ("f", 1): ("f", 0) was used more recently
    assert ("f", 1) not in cache and ("f", 0) in cache and ("f", 3) in cache
    cache.put(("big",), torch.zeros(100, dtype=torch.uint8))  # larger than the cache: ignored
    assert ("big",) not in cache
    stats = cache.stats()
    assert stats.evictions == 1 and stats.entries == 3 and stats.bytes == 36
    with pytest.raises(ValueError):
        FrameCache(-1)


def test_frame_cache_thread_safety() -> None:
    """8 threads put and get at once: every hit is the frame stored under its key, and hits happen. Failures are
    collected and asserted after `join` (an assert inside a thread only warns)."""
    cache = FrameCache(max_bytes=50 * 12)
    frames = [torch.full((3, 2, 2), i, dtype=torch.uint8) for i in range(200)]
    wrong: list[str] = []
    hits = [0] * 8

    def work(offset: int) -> None:
        for j in range(2000):
            i = (j * 7 + offset) % 200
            cache.put(i, frames[i])
            got = cache.get(i)
            if got is None:  # evicted by the other threads' puts in between: allowed
                continue
            hits[offset] += 1
            if got.shape != (3, 2, 2) or not bool((got == i).all()):
                wrong.append(f"key {i}: got a frame of {got.flatten().tolist()[:3]}...")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong, wrong[:3]
    assert all(hits), hits  # a cache that stores nothing (every get None) fails too
    stats = cache.stats()
    assert stats.bytes == stats.entries * 12 <= 50 * 12


def test_decoder_lru_is_bounded() -> None:
    root = cached_dataset("av1", 2, cameras=("front", "wrist"))
    provider = make_frame_provider(root, video_backend="pyav", max_open_decoders=2, cache_mb=0)
    for episode in (0, 2):
        for camera in provider.camera_keys:
            provider.frames_at(episode, [0.0], camera)
    assert provider.stats().open_decoders_this_thread == 2  # 4 files touched, 2 kept open
    provider.close()
    assert provider.stats().open_decoders_this_thread == 0
