"""isolate=True: decoding in worker processes; a broken file is a clean error, a dying decoder too."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from frames_helpers import FRONT, as_hwc, cached_dataset, parquet_times, reference, video_file

from lerobot_keyframes.frames import DecoderCrashError, FrameDecodeError, make_frame_provider
from lerobot_keyframes.frames.isolate import CRASH_HOOK_ENV


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("iso") / "ds"
    shutil.copytree(cached_dataset("av1", 2), root)
    path = video_file(root, FRONT, 1)  # episode 2; episodes 0 and 1 are in file-000
    data = bytearray(path.read_bytes())
    noise = np.random.default_rng(1).integers(0, 256, len(data) - 2200, dtype=np.uint8).tobytes()
    data[200 : len(data) - 2000] = noise
    path.write_bytes(bytes(data))
    return root


def test_isolated_provider_end_to_end(damaged: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One worker pool for the whole story: exact frames, a corrupt file, a worker that really dies."""
    clean = cached_dataset("av1", 2)
    provider = make_frame_provider(damaged, isolate=True, isolate_workers=1, cache_mb=0)
    try:
        # exact frames through the worker
        frames = provider.frames_at(1, parquet_times(1)[::4])
        assert frames.video_backend == "torchcodec"
        ref = reference(clean, FRONT, 1)
        for k, i in enumerate(range(0, 50, 4)):
            assert np.array_equal(as_hwc(frames, k), ref[i])

        # a corrupted stream: the worker answers with an error (it does not die on this one)
        with pytest.raises(FrameDecodeError) as info:
            provider.frames_at(2, [0.0, 0.5])
        assert not isinstance(info.value, DecoderCrashError)
        assert info.value.file == str(video_file(damaged, FRONT, 1)) and info.value.episode == 2

        # a decoder that really crashes (SIGSEGV in the worker, through the test hook)
        monkeypatch.setenv(CRASH_HOOK_ENV, "file-000")
        with pytest.raises(DecoderCrashError) as crash:
            provider.frames_at(0, [0.1, 0.2])
        err = crash.value
        assert "SIGSEGV" in str(err) and err.file == str(video_file(damaged, FRONT, 0))
        assert err.episode == 0 and err.camera == FRONT and err.times == (0.1, 0.2)
        monkeypatch.delenv(CRASH_HOOK_ENV)

        # the job goes on: a fresh worker replaces the dead one
        again = provider.frames_at(0, [float(np.float32(3 / 30))])
        assert np.array_equal(as_hwc(again, 0), reference(clean, FRONT, 0)[3])
        assert provider.runtime().isolated().num_workers == 1
    finally:
        provider.close()


def test_isolated_on_error_none(damaged: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    provider = make_frame_provider(damaged, isolate=True, isolate_workers=1, on_error="none", video_backend="pyav")
    try:
        monkeypatch.setenv(CRASH_HOOK_ENV, "file-000")
        frames = provider.frames_at(1, [0.0, 0.1])
        assert frames.data == [None, None] and "died" in frames.errors[0]
        monkeypatch.delenv(CRASH_HOOK_ENV)
        ok = provider.frames_at(1, [0.0])
        assert ok.complete and ok.video_backend == "pyav"
    finally:
        provider.close()
