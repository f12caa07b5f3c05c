"""Hub videos decoded from HTTP range reads (`dataset.remote`), through the real local Hub and real decoders.

Every test compares the frames with decoding the same file from disk, bit for bit, and reads the bytes moved
from both sides: the stats the process keeps and the bodies the local Hub sent.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from frames_helpers import FRONT, WRIST, write_dataset
from hub_fixtures import video_requests
from huggingface_hub import HfApi

from lerobot_keyframes.dataset import load_episodes
from lerobot_keyframes.dataset.remote import mp4, remote_stats, snapshot_commit
from lerobot_keyframes.dataset.remote import video as remote
from lerobot_keyframes.frames import make_frame_provider
from lerobot_keyframes.frames.decoders.index import build_file_index
from lerobot_keyframes.frames.errors import RemoteReadError

pytest_plugins = ("hub_fixtures",)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Multi-file datasets (episode 1 starts inside file-000, episode 2 is file-001), two cameras:
    AV1 GOP 2 (lerobot's default) and H.264 GOP 12 with B-frames (decode order != presentation order)."""
    base = tmp_path_factory.mktemp("remote")
    common = {"lengths": (60, 75, 66), "cameras": ("front", "wrist"), "width": 320, "height": 240}
    return {"av1": write_dataset(base / "av1", codec="av1", gop=2, **common),
            "h264_bframes": write_dataset(base / "h264", codec="h264", gop=12, **common)}



def publish(root: Path, repo_id: str) -> None:
    api = HfApi()
    api.create_repo(repo_id, repo_type="dataset")
    api.upload_folder(folder_path=str(root), repo_id=repo_id, repo_type="dataset")



def sizes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*.mp4"))


def decode_all(provider, rows, stride: int, **kwargs):
    """Every camera of every episode at every `stride`-th parquet timestamp, in one call."""
    requests = [(row, [float(t) for t in row["timestamps"][::stride]], cam) for row in rows
                for cam in row["camera_keys"]]
    return requests, provider.frames_at_many(requests, **kwargs)


def assert_identical(streamed, local_root: Path, requests) -> None:
    local = make_frame_provider(local_root)
    reference = local.frames_at_many([(row["episode_index"], times, cam) for row, times, cam in requests])
    for got, want, (row, _, cam) in zip(streamed, reference, requests):
        assert got.indices == want.indices and got.pts == want.pts
        assert torch.equal(got.data, want.data), f"episode {row['episode_index']} camera {cam}"


@pytest.mark.parametrize(("name", "video_backend"), [("av1", "auto"), ("h264_bframes", "auto"), ("av1", "pyav")])
def test_streamed_frames_are_bit_identical_to_the_file_on_disk(hub, datasets, name, video_backend) -> None:
    publish(datasets[name], "tester/ds")
    rows = load_episodes("tester/ds").to_list()
    snapshot = Path(rows[0]["root"])
    assert snapshot_commit(snapshot) == snapshot.name and rows[1]["cameras"][0]["from_timestamp"] > 0

    provider = make_frame_provider(rows, video_access="stream", video_backend=video_backend)
    # a frame every 20 (AV1 GOP 2) or 45 (H.264 GOP 12, up to 11 frames from its keyframe) frames
    requests, frames = decode_all(provider, rows, stride=20 if name == "av1" else 45)
    assert_identical(frames, datasets[name], requests)

    assert not (snapshot / "videos").exists(), "streaming must not download the videos"
    stats = remote_stats()
    assert len(stats.files) == 4 and all(f.mode == "stream" for f in stats.files.values())
    assert stats.total("download") == 0 and stats.requests("unplanned") == 0  # the plans covered every read
    moved = sum(r.bytes for r in video_requests(hub))
    assert moved == stats.moved_bytes  # the stats count what the Hub really sent
    assert moved < 0.6 * sizes(datasets[name])
    assert 0 < stats.total("needed") <= stats.total("planned") + stats.total("header")


def test_a_second_process_reads_the_range_cache_and_offline_works_after_streaming(hub, datasets,
                                                                                   monkeypatch) -> None:
    publish(datasets["av1"], "tester/ds")
    rows = load_episodes("tester/ds").to_list()
    requests, first = decode_all(make_frame_provider(rows, video_access="stream"), rows, stride=25)
    assert remote_stats().moved_bytes > 0

    remote.clear()  # what a new process starts with: only the disk range cache
    before = len(video_requests(hub))
    _, second = decode_all(make_frame_provider(rows, video_access="stream"), rows, stride=25)
    assert len(video_requests(hub)) == before, "the second run must not fetch a byte"
    assert remote_stats().moved_bytes == 0 and remote_stats().total("cache") > 0
    for a, b in zip(first, second):
        assert torch.equal(a.data, b.data)

    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    remote.clear()
    offline_rows = load_episodes("tester/ds").to_list()  # meta + data from the Hugging Face cache
    _, third = decode_all(make_frame_provider(offline_rows, video_access="auto"), offline_rows, stride=25)
    for a, b in zip(first, third):
        assert torch.equal(a.data, b.data)
    assert len(video_requests(hub)) == before

    # a frame the first run never fetched: one clear error, no request
    provider = make_frame_provider(offline_rows, video_access="stream")
    with pytest.raises(RemoteReadError) as exc:
        provider.frames_at(offline_rows[2], [float(offline_rows[2]["timestamps"][57])], WRIST)  # past the head request
    message = str(exc.value)
    assert "episode 2" in message and WRIST in message and "HF_HUB_OFFLINE=1" in message
    assert "file-001.mp4" in message and len(video_requests(hub)) == before


def test_a_range_that_fails_after_retries_fails_only_its_episode(hub, datasets, no_backoff_sleep) -> None:
    publish(datasets["av1"], "tester/ds")
    rows = load_episodes("tester/ds").to_list()
    provider = make_frame_provider(rows, video_access="stream", on_error="none")
    provider.frames_at(rows[0], [0.0], FRONT)  # the header is read
    table = remote.remote_video(next(iter(provider.runtime().remote_indexes))).sample_table()
    # every range request into episode 1's part of file-000 fails with HTTP 503, retries included
    start = int(table.offset[table.presentation_order()[60]])
    hub.fail_range(status=503, times=1000, match=f"{FRONT}/chunk-000/file-000.mp4", min_start=start)

    times = [0.5, 1.0, 1.5]
    ok, failed, other = provider.frames_at_many([(rows[0], times, FRONT), (rows[1], times, FRONT),
                                                 (rows[1], times, WRIST)])
    assert not ok.missing and not other.missing
    assert failed.missing == (0, 1, 2)
    assert all("HTTP 503" in e and "file-000.mp4" in e and "episode 1" in e and FRONT in e for e in failed.errors)
    retried = [r for r in hub.requests if r.status == 503]
    assert len(retried) > 1, "huggingface_hub's retries ran before giving up"

    strict = make_frame_provider(rows, video_access="stream")
    with pytest.raises(RemoteReadError) as exc:
        strict.frames_at_many([(rows[0], times, FRONT), (rows[1], times, FRONT)])
    assert exc.value.episode == 1 and exc.value.camera == FRONT and exc.value.status == 503
    assert exc.value.time == 0.5 and "file-000.mp4" in str(exc.value)


@pytest.mark.parametrize("corrupt", ["short", "wrong_range"])
def test_short_or_wrong_range_answers_are_detected_never_decoded(hub, datasets, corrupt, caplog) -> None:
    publish(datasets["av1"], "tester/ds")
    rows = load_episodes("tester/ds").to_list()
    provider = make_frame_provider(rows, video_access="stream")
    provider.frames_at(rows[0], [0.0], FRONT)
    # one bad answer: detected and asked again, the frames are still exact
    hub.fail_range(corrupt=corrupt, times=1, match="file-000.mp4", min_start=1)
    with caplog.at_level(logging.WARNING, logger="lerobot_keyframes.dataset.remote"):
        requests, frames = decode_all(provider, rows[:1], stride=10)
    assert_identical(frames, datasets["av1"], requests)
    assert "asking again" in caplog.text
    # bad every time: an error naming the problem, never a decode of those bytes
    hub.fail_range(corrupt=corrupt, times=1000, match="file-000.mp4", min_start=1)
    with pytest.raises(RemoteReadError) as exc:
        provider.frames_at(rows[1], [1.0, 2.0], WRIST)
    assert "not the bytes asked" in str(exc.value) and exc.value.episode == 1


def test_an_untrusted_header_downloads_the_file_whole_with_one_info_line(hub, datasets, tmp_path, caplog) -> None:
    root = tmp_path / "frag"
    shutil.copytree(datasets["av1"], root)
    fragmented = root / f"videos/{FRONT}/chunk-000/file-001.mp4"
    _fragment(fragmented)
    publish(root, "tester/ds")
    rows = load_episodes("tester/ds").to_list()
    provider = make_frame_provider(rows, video_access="stream")
    with caplog.at_level(logging.INFO, logger="lerobot_keyframes"):
        requests, frames = decode_all(provider, rows, stride=20)
    assert_identical(frames, root, requests)
    lines = [r.getMessage() for r in caplog.records if "downloading it whole" in r.getMessage()]
    assert len(lines) == 1 and "file-001.mp4" in lines[0] and "fragmented" in lines[0]
    stats = remote_stats()
    modes = {name.rsplit("/", 3)[-3] + "/" + name.rsplit("/", 1)[-1]: f.mode for name, f in stats.files.items()}
    assert modes[f"{FRONT}/file-001.mp4"] == "download" and modes[f"{WRIST}/file-001.mp4"] == "stream"
    assert (Path(rows[0]["root"]) / f"videos/{FRONT}/chunk-000/file-001.mp4").read_bytes() == fragmented.read_bytes()


def test_a_file_with_its_header_first_streams_too(hub, datasets, tmp_path) -> None:
    root = tmp_path / "faststart"
    shutil.copytree(datasets["h264_bframes"], root)
    for path in root.rglob("*.mp4"):
        _remux(path, "faststart")
        data = path.read_bytes()
        assert data.find(b"moov") < data.find(b"mdat")
    publish(root, "tester/ds")
    rows = load_episodes("tester/ds").to_list()
    requests, frames = decode_all(make_frame_provider(rows, video_access="stream"), rows, stride=45)
    assert_identical(frames, root, requests)
    stats = remote_stats()
    assert all(f.mode == "stream" for f in stats.files.values()) and stats.requests("unplanned") == 0


def test_auto_downloads_a_file_a_decode_would_mostly_read(hub, datasets, caplog) -> None:
    publish(datasets["av1"], "tester/ds")
    rows = load_episodes("tester/ds").to_list()
    every = [(rows[2], [float(t) for t in rows[2]["timestamps"]], FRONT)]
    with caplog.at_level(logging.INFO, logger="lerobot_keyframes"):
        frames = make_frame_provider(rows, video_access="auto").frames_at_many(every)
    assert "video_access='auto'" in caplog.text
    assert remote_stats().total("download") == (datasets["av1"] / f"videos/{FRONT}/chunk-000/file-001.mp4").stat().st_size
    assert_identical(frames, datasets["av1"], every)

    remote.clear()
    streamed = make_frame_provider(rows, video_access="stream").frames_at_many(
        [(rows[1], [float(t) for t in rows[1]["timestamps"]], WRIST)])
    assert remote_stats().total("download") == 0 and not streamed[0].missing


def test_download_is_todays_behaviour(hub, datasets) -> None:
    publish(datasets["av1"], "tester/ds")
    episodes = load_episodes("tester/ds", video_access="download", cameras=[FRONT])
    root = Path(episodes[0]["root"])
    assert (root / f"videos/{FRONT}/chunk-000/file-000.mp4").is_file()
    assert not (root / f"videos/{WRIST}").exists()
    rows = episodes.to_list()
    before = len(video_requests(hub))
    requests, frames = decode_all(make_frame_provider(rows, video_access="download"), rows, stride=20)
    assert_identical(frames, datasets["av1"], requests)
    assert len(video_requests(hub)) == before and not remote_stats().files


@pytest.mark.parametrize("name", ["av1", "h264_bframes"])
def test_the_header_table_is_ffmpegs_frame_table(datasets, name) -> None:
    for path in sorted(datasets[name].rglob("*.mp4")):
        table = _table(path)
        packets = build_file_index(str(path), from_header=False)
        order = table.presentation_order()
        assert np.array_equal(table.pts[order], packets.pts) and np.array_equal(table.keyframe[order], packets.keyframe)
        assert table.time_base if hasattr(table, "time_base") else table.timescale == packets.time_base[1]
        import av

        with av.open(str(path)) as container:  # offsets, sizes and decode times as FFmpeg's own index has them
            entries = container.streams.video[0].index_entries
            assert [(e.pos, e.size, e.timestamp) for e in entries] == list(
                zip(table.offset.tolist(), table.size.tolist(), table.dts.tolist()))
    if name == "h264_bframes":
        assert table.delay > 0 and not np.array_equal(table.pts, np.sort(table.pts))  # really reordered


def test_headers_that_cannot_be_trusted_say_why(datasets, tmp_path) -> None:
    source = datasets["av1"] / f"videos/{FRONT}/chunk-000/file-000.mp4"
    fragmented = tmp_path / "frag.mp4"
    shutil.copy(source, fragmented)
    _fragment(fragmented)
    with pytest.raises(mp4.UntrustedHeader, match="fragmented"):
        _table(fragmented)
    data = bytearray(source.read_bytes())
    at = data.find(b"elst")
    data[at + 8 : at + 12] = (2).to_bytes(4, "big")  # an edit list of 2 entries
    broken = tmp_path / "edits.mp4"
    broken.write_bytes(bytes(data))
    with pytest.raises(mp4.UntrustedHeader, match="edit list of 2"):
        _table(broken)


def _table(path: Path) -> mp4.SampleTable:
    data = path.read_bytes()
    found = [(o, e) for kind, o, _, e in mp4.iter_boxes(data, 0, len(data)) if kind == b"moov"]
    return mp4.parse_moov(data[found[0][0] : found[0][1]], len(data))


def _fragment(path: Path) -> None:
    """Rewrite an mp4 as a fragmented one (same packets, samples described in moof boxes, not the header)."""
    _remux(path, "frag_keyframe+empty_moov")


def _remux(path: Path, movflags: str) -> None:
    """Rewrite an mp4 with the same packets and other `movflags` (its container layout)."""
    import av

    tmp = path.with_suffix(".remux.mp4")
    with av.open(str(path)) as src, av.open(str(tmp), "w", options={"movflags": movflags}) as dst:
        stream = dst.add_stream_from_template(src.streams.video[0], opaque=True)
        for packet in src.demux(src.streams.video[0]):
            if packet.size:
                packet.stream = stream
                dst.mux(packet)
    tmp.replace(path)


def test_the_ffmpeg_cli_backend_reads_a_downloaded_file(hub, datasets, caplog) -> None:
    from lerobot_keyframes.frames.decoders.base import ffmpeg_executable

    if ffmpeg_executable() is None:
        pytest.skip("no ffmpeg executable")
    publish(datasets["av1"], "tester/ds")
    rows = load_episodes("tester/ds").to_list()
    with caplog.at_level(logging.INFO, logger="lerobot_keyframes"):
        requests, frames = decode_all(make_frame_provider(rows[2:], video_access="stream", video_backend="ffmpeg"),
                                      rows[2:], stride=30)
    assert_identical(frames, datasets["av1"], requests)
    assert "the ffmpeg CLI video backend reads files" in caplog.text
    assert {f.mode for f in remote_stats().files.values()} == {"download"}


def test_held_bytes_stay_within_the_memory_budget_and_frames_stay_exact(hub, datasets, monkeypatch) -> None:
    monkeypatch.setattr(remote, "MEMORY_BYTES", 64 << 10)  # far less than one call's ranges
    monkeypatch.setenv("LEROBOT_KEYFRAMES_RANGE_CACHE_MB", "0")  # no disk cache to fall back on
    publish(datasets["av1"], "tester/ds")
    rows = load_episodes("tester/ds").to_list()
    provider = make_frame_provider(rows, video_access="stream")
    for row in rows:  # one call per episode, like KeyframeTransform
        requests, frames = decode_all(provider, [row], stride=7)
        assert_identical(frames, datasets["av1"], requests)
        header = sum(b - a for v in remote.registry().videos.values() for a, b in v.held()
                     if a in v._permanent)
        held = sum(b - a for v in remote.registry().videos.values() for a, b in v.held())
        assert held == remote.registry()._bytes <= remote.MEMORY_BYTES + header
    assert remote_stats().total("cache") == 0 and remote_stats().requests("unplanned") == 0
