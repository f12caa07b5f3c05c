"""Threads, processes, pickling: one decoder per (thread, file), no shared decoder, stable fingerprints."""

from __future__ import annotations

import pickle
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from frames_helpers import FRONT, LENGTHS, WRIST, cached_dataset, parquet_times, reference

from lerobot_keyframes.dataset import load_episodes
from lerobot_keyframes.frames import VideoFrameProvider, make_frame_provider


def _root() -> Any:
    return cached_dataset("av1", 2, cameras=("front", "wrist"))


@pytest.mark.parametrize("backend", ["torchcodec", "pyav"])
def test_eight_threads_hammering_one_provider(backend: str) -> None:
    root = _root()
    provider = make_frame_provider(root, video_backend=backend, cache_mb=2, max_open_decoders=2)
    refs = {(e, c): reference(root, c, e) for e in range(3) for c in (FRONT, WRIST)}
    errors: list[BaseException] = []
    mismatches = []
    decoders_per_thread: dict[int, int] = {}

    def work(seed: int) -> int:
        rng = np.random.default_rng(seed)
        done = 0
        for _ in range(12):
            episode = int(rng.integers(0, 3))
            camera = (FRONT, WRIST)[int(rng.integers(0, 2))]
            idx = rng.integers(0, LENGTHS[episode], size=int(rng.integers(1, 6)))
            times = parquet_times(episode)
            try:
                frames = provider.frames_at(episode, [times[i] for i in idx], camera)
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)
                continue
            for k, i in enumerate(idx):
                if not np.array_equal(frames.data[k].permute(1, 2, 0).numpy(), refs[(episode, camera)][i]):
                    mismatches.append((seed, episode, camera, int(i)))
            done += len(idx)
        decoders_per_thread[threading.get_ident()] = provider.stats().open_decoders_this_thread
        return done

    with ThreadPoolExecutor(8) as pool:
        total = sum(pool.map(work, range(8)))
    assert not errors, errors[:3]
    assert not mismatches, mismatches[:5]
    assert total > 8 * 12
    # each thread kept its own decoders, bounded by max_open_decoders
    assert decoders_per_thread and all(1 <= n <= 2 for n in decoders_per_thread.values())
    stats = provider.stats()
    assert stats.cache.bytes <= 2 * 1024 * 1024


def test_pickle_drops_runtime_state_and_keeps_config() -> None:
    provider = make_frame_provider(_root(), camera_key=WRIST, video_backend="pyav", tolerance_frames=0.3)
    provider.frames_at(0, [0.0, 0.5])  # opens a decoder and fills the cache
    clone = pickle.loads(pickle.dumps(provider))
    assert isinstance(clone, VideoFrameProvider)
    assert clone.config == provider.config and clone.camera_keys == provider.camera_keys
    assert clone.default_camera == WRIST
    assert clone.fingerprint() == provider.fingerprint()
    assert len(clone.cache) == 0 and clone.stats().open_decoders_this_thread == 0
    a = provider.frames_at(1, [0.2])
    b = clone.frames_at(1, [0.2])
    assert np.array_equal(a.data.numpy(), b.data.numpy())


def test_fingerprint_is_stable_and_config_sensitive() -> None:
    from datasets.fingerprint import Hasher

    root = _root()
    p1 = make_frame_provider(root)
    p2 = make_frame_provider(root)
    p1.frames_at(0, [0.0])  # runtime state must not leak into the fingerprint
    assert p1.fingerprint() == p2.fingerprint()
    assert Hasher.hash(p1) == Hasher.hash(p2)
    p3 = make_frame_provider(root, tolerance_frames=0.2)
    p4 = make_frame_provider(root, camera_key=WRIST)
    assert len({p1.fingerprint(), p3.fingerprint(), p4.fingerprint()}) == 3
    assert len({Hasher.hash(p1), Hasher.hash(p3), Hasher.hash(p4)}) == 3


def _decode_rows(batch: dict[str, list], provider: Any) -> dict[str, list]:
    """A datasets.map function that only sees rows (self-contained episodes)."""
    import os

    out: dict[str, list] = {"pixels_sum": [], "pid": [], "indices": []}
    for i in range(len(batch["episode_index"])):
        row = {k: v[i] for k, v in batch.items()}
        frames = provider.video_for_episode(row, 5)
        out["pixels_sum"].append(int(frames.data.sum()))
        out["pid"].append(os.getpid())
        out["indices"].append(list(frames.indices))
    return out


def test_fork_safety_in_datasets_map_num_proc_2() -> None:
    """The provider is used in the parent first (decoders open), then inside forked map workers."""
    root = _root()
    table = load_episodes(root)
    provider = make_frame_provider(table)
    expected = [int(provider.video_for_episode(e, 5).data.sum()) for e in range(3)]
    mapped = table.map(
        _decode_rows, batched=True, batch_size=1, num_proc=2, fn_kwargs={"provider": provider},
        remove_columns=table.column_names, load_from_cache_file=False,
    )
    assert mapped["pixels_sum"] == expected
    assert len(set(mapped["pid"])) == 2
    assert mapped["indices"][0] == [0, 10, 20, 29, 39]


@pytest.mark.parametrize("backend", ["torchcodec", "pyav"])
def test_workers_split_one_call_across_threads(backend: str) -> None:
    """workers=2: one call's frames are decoded by two threads (each with its own decoder), same result."""
    root = _root()
    provider = make_frame_provider(root, video_backend=backend, workers=2, cache_mb=0)
    requests = [(e, parquet_times(e), c) for e in range(3) for c in (FRONT, WRIST)]
    for (episode, _times, camera), frames in zip(requests, provider.frames_at_many(requests)):
        ref = reference(root, camera, episode)
        assert frames.indices == tuple(range(LENGTHS[episode]))
        for i in range(LENGTHS[episode]):
            assert np.array_equal(frames.data[i].permute(1, 2, 0).numpy(), ref[i])
    # 4 files x 2 chunks each: two decode calls per file, on two threads
    assert provider.stats().decode_calls == {backend: 8}
    # a large single request is also gathered on both threads, in order
    big = provider.frames_at(1, parquet_times(1) * 40)
    assert big.indices == tuple(range(LENGTHS[1])) * 40
    assert np.array_equal(big.data[LENGTHS[1] + 7].permute(1, 2, 0).numpy(), reference(root, FRONT, 1)[7])
    clone = pickle.loads(pickle.dumps(provider))  # the pool is runtime state, not pickled
    assert clone.config.workers == 2 and "_runtime_of_pid" not in vars(clone)
    provider.close()
