"""N times in, N frames out, or an error naming file, episode, camera and time. Never a shorter list."""

from __future__ import annotations

import logging
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from frames_helpers import FRONT, as_hwc, cached_dataset, parquet_times, reference, video_file, write_dataset

from lerobot_keyframes.frames import (
    FrameDecodeError,
    FrameTimeError,
    NullProvider,
    UnknownCameraError,
    VideoBackendUnavailableError,
    VideoFileMissingError,
    make_frame_provider,
)

BACKENDS = ["torchcodec", "pyav", "ffmpeg", "auto"]


def _copy(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    shutil.copytree(cached_dataset("av1", 2), root)
    return root


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _corrupt_payload(path: Path) -> None:
    """Keep the container (so it opens and indexes) but overwrite the coded frames with noise."""
    data = bytearray(path.read_bytes())
    noise = np.random.default_rng(0).integers(0, 256, len(data) - 2200, dtype=np.uint8).tobytes()
    data[200 : len(data) - 2000] = noise
    path.write_bytes(bytes(data))


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(4096))


@pytest.fixture(scope="module")
def broken_roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("broken")
    roots = {}
    for name, damage in (("truncated", _truncate), ("corrupt", _corrupt_payload), ("garbage", _garbage)):
        root = _copy(base, name)
        damage(video_file(root, FRONT, 1))  # episode 2's file; episodes 0 and 1 stay readable
        roots[name] = root
    missing = _copy(base, "missing")
    video_file(missing, FRONT, 1).unlink()
    roots["missing"] = missing
    return roots


def _check_context(err: FrameDecodeError, root: Path, times: list[float]) -> None:
    assert err.file == str(video_file(root, FRONT, 1))
    assert err.episode == 2 and err.camera == FRONT
    assert err.times == tuple(times) and err.time == times[0]
    text = str(err)
    assert err.file in text and "episode 2" in text and FRONT in text and f"{times[0]:.6f}" in text


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("damage", ["truncated", "corrupt", "garbage"])
def test_broken_video_raises_named_error(broken_roots: dict[str, Path], backend: str, damage: str) -> None:
    root = broken_roots[damage]
    provider = make_frame_provider(root, video_backend=backend, cache_mb=0)
    times = parquet_times(2)[::9]
    with pytest.raises(FrameDecodeError) as info:
        provider.frames_at(2, times)
    _check_context(info.value, root, times)
    # the other file still decodes, exactly
    ok = provider.frames_at(1, [0.0])
    assert np.array_equal(as_hwc(ok, 0), reference(cached_dataset("av1", 2), FRONT, 1)[0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_missing_file(broken_roots: dict[str, Path], backend: str) -> None:
    root = broken_roots["missing"]
    provider = make_frame_provider(root, video_backend=backend)
    with pytest.raises(VideoFileMissingError) as info:
        provider.frames_at(2, [0.0, 0.5])
    _check_context(info.value, root, [0.0, 0.5])
    assert "missing" in str(info.value)


def test_on_error_none_keeps_positions_and_logs(
    broken_roots: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    root = broken_roots["corrupt"]
    provider = make_frame_provider(root, on_error="none", cache_mb=0)
    last = parquet_times(1)[-1]
    with caplog.at_level(logging.WARNING, logger="lerobot_keyframes.frames"):
        # a time outside the episode fails alone; the others are real frames
        partial = provider.frames_at(1, [0.0, last + 1.0, last])
        whole = provider.frames_at(2, [0.0, 0.1, 0.2])  # the whole file is broken
    assert isinstance(partial.data, list) and len(partial.data) == 3 and not partial.complete
    assert partial.missing == (1,)
    assert partial.data[1] is None and partial.indices == (0, -1, 49)
    assert np.isnan(partial.timestamps[1]) and np.isnan(partial.pts[1])
    assert partial.errors[1] and "outside the episode" in partial.errors[1]
    assert partial.errors[0] is None and partial.data[0].shape == (3, 96, 128)
    assert partial.to_pil()[1] is None and partial.to_pil()[0].size == (128, 96)
    assert whole.data == [None, None, None] and whole.missing == (0, 1, 2)
    assert all("decoding failed" in e for e in whole.errors)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "outside the episode" in logged and "file-001.mp4" in logged


def test_on_error_none_missing_file_and_unknown_camera(broken_roots: dict[str, Path]) -> None:
    provider = make_frame_provider(broken_roots["missing"], on_error="none")
    frames = provider.frames_at(2, [0.0, 0.5])
    assert frames.data == [None, None] and "missing" in frames.errors[0]
    frames = provider.frames_at(0, [0.0], camera="observation.images.nope")
    assert frames.data == [None] and "unknown camera" in frames.errors[0]


def test_unknown_camera_and_episode() -> None:
    root = cached_dataset("av1", 2)
    provider = make_frame_provider(root)
    with pytest.raises(UnknownCameraError) as info:
        provider.frames_at(0, [0.0], camera="observation.images.nope")
    assert info.value.episode == 0 and info.value.camera == "observation.images.nope"
    with pytest.raises(UnknownCameraError):
        make_frame_provider(root, camera_key="observation.images.nope")
    with pytest.raises(FrameDecodeError, match="episode 7 is not served"):
        provider.frames_at(7, [0.0])


def test_out_of_range_time_names_the_time() -> None:
    provider = make_frame_provider(cached_dataset("av1", 2))
    with pytest.raises(FrameTimeError) as info:
        provider.frames_at(2, [0.0, 0.5, 99.0])
    assert info.value.time == 99.0 and info.value.episode == 2 and "t=99.000000s" in str(info.value)


def test_errors_pickle_with_their_attributes() -> None:
    err = FrameTimeError("bad", file="/x.mp4", episode=3, camera="cam", time=1.5, video_backend="pyav")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is FrameTimeError and str(back) == str(err)
    assert (back.file, back.episode, back.camera, back.time, back.video_backend) == ("/x.mp4", 3, "cam", 1.5, "pyav")


def test_dataset_without_cameras_gives_null_provider(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "nocam", cameras=(), lengths=(10,))
    provider = make_frame_provider(root)
    assert isinstance(provider, NullProvider)
    assert provider.camera_keys == [] and provider.default_camera is None
    with pytest.raises(UnknownCameraError, match="no .*cameras"):
        provider.frames_at(0, [0.0])


def test_bad_arguments() -> None:
    root = cached_dataset("av1", 2)
    with pytest.raises(ValueError, match=r"^video_backend must be one of \(.*'pyav'.*\), got 'opencv'$"):
        make_frame_provider(root, video_backend="opencv")
    with pytest.raises(ValueError, match=r"^on_error must be one of \('raise', 'none'\), got 'skip'$"):
        make_frame_provider(root, on_error="skip")
    with pytest.raises(ValueError, match=r"^tolerance_frames must be within \[0, 0\.5\] frame periods, got 0\.8$"):
        make_frame_provider(root, tolerance_frames=0.8)


def test_unavailable_backend_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lerobot_keyframes.frames.config.backend_available", lambda name: False)
    with pytest.raises(VideoBackendUnavailableError, match="ffmpeg"):
        make_frame_provider(cached_dataset("av1", 2), video_backend="ffmpeg")
