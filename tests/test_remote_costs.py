"""What a Hub video read by byte range costs: bytes, requests and rounds of requests, through the real local Hub.

- read-through gaps (bytes FFmpeg reads only to reach the next sample it seeks to) are answered without being
  fetched, and the frames stay bit-identical to decoding the file on disk, with dense sampling of small frames;
- near ranges share a request within a byte budget (fewer requests, bytes still within 1.2x the samples needed);
- a file's header is read once per process (one request when it comes first in the file, like lerobot's), shared by
  every episode of the file;
- the quality checks decode every episode's frames in one call (one round of range requests, not one per episode).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from frames_helpers import FRONT, WRIST, write_dataset
from hub_fixtures import video_requests
from test_remote_video import assert_identical, decode_all, publish

from lerobot_keyframes.dataset import load_episodes
from lerobot_keyframes.dataset.remote import ranges as rng
from lerobot_keyframes.dataset.remote import remote_stats
from lerobot_keyframes.dataset.remote import video as remote
from lerobot_keyframes.frames import make_frame_provider

pytest_plugins = ("hub_fixtures",)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small frames (320x240, ~3 kB each), episodes sharing files: AV1 GOP 2 and H.264 GOP 12 with B-frames, and
    the AV1 one rewritten with its header first (how lerobot writes files)."""
    base = tmp_path_factory.mktemp("costs")
    common = {"lengths": (90, 75, 66), "cameras": ("front", "wrist"), "width": 320, "height": 240}
    av1 = write_dataset(base / "av1", codec="av1", gop=2, **common)
    out = {"av1": av1, "h264_bframes": write_dataset(base / "h264", codec="h264", gop=12, **common)}
    from test_remote_video import _remux

    # 3,100 frames in one file, header first: a sample table of ~25 kB (more than 16 KiB, less than 64 KiB)
    long = write_dataset(base / "long", codec="h264", gop=2, lengths=(1600, 1500), width=64, height=48)
    for path in long.rglob("*.mp4"):
        _remux(path, "faststart")
    out["long_faststart"] = long
    return out



def first_samples(stats_files) -> int:
    """Bytes of the first sample of every file read (a decoder reads it when it opens: in every plan)."""
    total = 0
    for video in remote.registry().videos.values():
        if str(video.file) in stats_files:
            total += int(video.sample_table().size[0])
    return total


@pytest.mark.parametrize(("name", "video_backend", "stride"),
                         [("av1", "auto", 3), ("av1", "pyav", 3), ("av1", "auto", 5), ("h264_bframes", "auto", 13),
                          ("h264_bframes", "pyav", 17)])
def test_read_through_gaps_are_never_fetched_and_frames_stay_bit_identical(hub, datasets, monkeypatch, name,
                                                                          video_backend, stride) -> None:
    monkeypatch.setattr(remote, "HUB_COALESCE", 0.0)  # every gap left to the reader
    publish(datasets[name], "tester/ds")
    rows = load_episodes("tester/ds").to_list()
    provider = make_frame_provider(rows, video_access="stream", video_backend=video_backend)
    requests, frames = decode_all(provider, rows, stride=stride)
    assert_identical(frames, datasets[name], requests)

    stats = remote_stats()
    assert stats.requests("unplanned") == 0 and stats.total("download") == 0
    assert stats.total("skipped") > 0, "dense sampling of small frames has gaps FFmpeg reads through"
    # what was fetched for the frames is the samples they need (and each file's first sample), nothing between
    assert stats.total("planned") <= stats.total("needed") + first_samples(stats.files)
    assert sum(r.bytes for r in video_requests(hub)) == stats.moved_bytes


def test_random_frames_one_call_at_a_time_through_open_decoders(hub, datasets, monkeypatch) -> None:
    """Decoders stay open between calls, so a later call's plan starts where an earlier one stopped: frames stay
    exact whatever order and spacing the calls have."""
    monkeypatch.setattr(remote, "HUB_COALESCE", 0.0)
    publish(datasets["av1"], "tester/ds")
    rows = load_episodes("tester/ds").to_list()
    provider = make_frame_provider(rows, video_access="stream")
    local = make_frame_provider(datasets["av1"])
    rng_ = np.random.default_rng(3)
    for _ in range(12):
        row = rows[int(rng_.integers(len(rows)))]
        cam = (FRONT, WRIST)[int(rng_.integers(2))]
        picks = sorted(rng_.choice(row["length"], size=int(rng_.integers(1, 6)), replace=False).tolist())
        times = [float(row["timestamps"][i]) for i in picks]
        got = provider.frames_at(row, times, cam)
        want = local.frames_at(row["episode_index"], times, cam)
        assert got.pts == want.pts and torch.equal(got.data, want.data)
    assert remote_stats().total("skipped") > 0 and remote_stats().requests("unplanned") == 0


def test_near_ranges_share_requests_within_the_byte_budget(hub, datasets, monkeypatch) -> None:
    publish(datasets["av1"], "tester/ds")
    rows = load_episodes("tester/ds").to_list()
    counts = {}
    for budget in (0.0, 0.15):
        monkeypatch.setattr(remote, "HUB_COALESCE", budget)
        monkeypatch.setattr(remote, "HUB_CONNECTIONS", 1)  # coalesce as far as the budget goes
        remote.clear()
        hub.requests.clear()
        requests, frames = decode_all(make_frame_provider(rows, video_access="stream", cache_mb=0), rows, stride=3)
        assert_identical(frames, datasets["av1"], requests)
        stats = remote_stats()
        counts[budget] = stats.requests("planned")
        fetched = stats.total("planned") + stats.total("unplanned")
        assert fetched <= (1 + budget) * stats.total("needed") + first_samples(stats.files)
    assert counts[0.15] < counts[0.0]


def test_coalesce_fills_the_smallest_gaps_first_within_the_budget() -> None:
    ranges = [(0, 10), (12, 20), (30, 40), (41, 50), (100, 110)]
    assert rng.coalesce(ranges, 0) == ranges
    assert rng.coalesce(ranges, 1) == [(0, 10), (12, 20), (30, 50), (100, 110)]
    assert rng.coalesce(ranges, 3) == [(0, 20), (30, 50), (100, 110)]
    assert rng.coalesce(ranges, 1000) == [(0, 50), (100, 110)]  # a gap above the median range (10): never
    assert rng.coalesce(ranges, 1000, keep=4) == [(0, 10), (12, 20), (30, 50), (100, 110)]


@pytest.mark.parametrize(("name", "header_requests"), [("av1", 2), ("long_faststart", 1)])
def test_each_header_is_read_once_per_process_for_every_episode_of_its_file(hub, datasets, name,
                                                                             header_requests) -> None:
    """Header last (PyAV's default): the head, then the moov. Header first (lerobot's files): one request, for a
    table of thousands of frames too."""
    publish(datasets[name], "tester/ds")
    rows = load_episodes("tester/ds").to_list()
    provider = make_frame_provider(rows, video_access="stream")
    for row in rows:  # one call per episode, like KeyframeTransform: episodes 0 and 1 share file-000
        for cam in row["camera_keys"]:
            provider.frames_at(row, [float(row["timestamps"][-1])], cam)
    stats = remote_stats()
    files = {r.path for r in video_requests(hub)}
    assert len(stats.files) == len(files) < len(rows) * len(rows[0]["camera_keys"])
    assert {f.requests["header"] for f in stats.files.values()} == {header_requests}
    heads = [r for r in video_requests(hub) if r.range.startswith("bytes=0-")]
    assert len(heads) == len(files)  # one head request per file, whatever number of episodes it holds


def test_the_quality_checks_decode_every_episode_in_one_call(hub, datasets) -> None:
    from lerobot_keyframes.quality import check_episodes
    from lerobot_keyframes.quality.config import QualityConfig

    publish(datasets["av1"], "tester/ds")
    rows = load_episodes("tester/ds").to_list()
    provider = make_frame_provider(rows, video_access="stream", cache_mb=0)
    calls = []
    real = provider.frames_at_many

    def counted(requests):
        requests = list(requests)
        calls.append(len(requests))
        return real(requests)

    provider.frames_at_many = counted  # type: ignore[method-assign]
    assert check_episodes(rows, provider, QualityConfig()) == {}
    assert calls == [len(rows) * 2], "one call for every episode and camera"
    local = check_episodes(load_episodes(datasets["av1"]).to_list(), make_frame_provider(datasets["av1"]),
                           QualityConfig())
    assert local == {}


def test_a_header_another_process_cached_meanwhile_is_read_from_the_cache(hub, datasets) -> None:
    """Two `datasets.map` workers share the range cache: one may find the head of a file cached by the other before
    it knew the file's size. It reads the size the other recorded; no request, same table."""
    from lerobot_keyframes.dataset.remote import HubFile, snapshot_commit

    publish(datasets["av1"], "tester/ds")
    rows = load_episodes("tester/ds").to_list()
    file = HubFile("tester/ds", snapshot_commit(rows[0]["root"]), rows[0]["cameras"][0]["path"])
    here = remote.remote_video(file)
    assert here.size is None and not here.has_header  # this process knows nothing of the file yet
    other = remote.RemoteVideo(file, remote._Registry())  # another process, the same range cache on disk
    reference = other.sample_table()
    before = len(video_requests(hub))
    table = here.sample_table()
    assert len(video_requests(hub)) == before, "the header comes from the range cache"
    assert here.size == other.size and np.array_equal(table.offset, reference.offset)
