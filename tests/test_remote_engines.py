"""Every engine reads a Hub source by byte range: `KeyframeTransform` in `datasets.map` (worker processes, each
with its own connections), the keyframes job and its push, `annotate` (local, and the Ray stages in-process),
review of a root written from a streamed source, and a run killed with SIGKILL mid-stream then resumed."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hub_fixtures import video_requests
from huggingface_hub import HfApi
from test_annotate_pipeline import oracle

from lerobot_keyframes.annotate import AnnotateConfig, InterjectionsConfig, PlanConfig, run_annotation
from lerobot_keyframes.dataset import load_episodes
from lerobot_keyframes.dataset.remote import video as remote
from lerobot_keyframes.hub import run_keyframes
from lerobot_keyframes.language import read_dataset_annotations
from lerobot_keyframes.testing.local_hub import LocalHub
from lerobot_keyframes.testing.scripted import ScriptedBackend
from lerobot_keyframes.transform import KeyframesConfig, KeyframeTransform
from lerobot_keyframes.vlm.config import VlmConfig

pytest_plugins = ("hub_fixtures",)

SCRIPTED = VlmConfig(backend="openai", model_id="scripted-qwen2.5-vl")



@pytest.fixture
def source(hub: LocalHub, sample_root: Path) -> str:
    api = HfApi()
    api.create_repo("tester/sample", repo_type="dataset", private=True)
    api.upload_folder(folder_path=str(sample_root), repo_id="tester/sample", repo_type="dataset")
    return "tester/sample"



def assert_only_ranges(hub: LocalHub) -> None:
    requests = video_requests(hub)
    assert requests and all(r.method == "GET" and r.range for r in requests), "videos must be read by range only"


def test_keyframe_transform_streams_in_map_workers_and_the_table_is_pushed_without_videos(hub, source, sample_root,
                                                                                          tmp_path) -> None:
    episodes = load_episodes(source)
    transform = KeyframeTransform.for_dataset(episodes, policy="uniform:4", video_access="stream")
    mapped = episodes.map(transform, batched=True, batch_size=1, num_proc=2, with_rank=True,
                          features=transform.features(episodes.features))
    local = load_episodes(sample_root)
    reference = local.map(KeyframeTransform.for_dataset(local, policy="uniform:4"), batched=True, batch_size=1,
                          features=transform.features(local.features))
    for cam in transform.cameras:
        for column in (f"keyframes.{cam}", f"keyframe_timestamps.{cam}"):  # JPEG bytes of identical frames
            assert mapped.data.column(column).to_pylist() == reference.data.column(column).to_pylist()
    snapshot = Path(episodes[0]["root"])
    assert not (snapshot / "videos").exists()
    assert_only_ranges(hub)
    assert transform.fingerprint() == KeyframeTransform.for_dataset(episodes, policy="uniform:4").fingerprint()

    result = run_keyframes(KeyframesConfig(source=source, policy="uniform:4", push_to_hub="tester/keyframes",
                                           video_access="stream", cache_dir=str(tmp_path / "ds-cache")))
    assert len(result) == 2 and not (snapshot / "videos").exists()
    pushed = HfApi().list_repo_files("tester/keyframes", repo_type="dataset")
    assert any(f.endswith(".parquet") for f in pushed)


def _annotate_config(out: Path, **kw) -> AnnotateConfig:
    return AnnotateConfig(repo_id="tester/sample", out=out,
                          plan=PlanConfig(n_task_rephrasings=2, min_subtask_seconds=0.3),
                          interjections=InterjectionsConfig(interjection_min_t=0.1), **kw)


def test_annotate_streams_a_hub_source_and_writes_the_rows_of_a_downloaded_one(hub, source, tmp_path) -> None:
    """Decoding reads byte ranges only; the new root is a complete LeRobot dataset, so its videos are fetched whole
    at write time (a pull request, --create_pr, fetches none), and the summary says so."""
    streamed = run_annotation(_annotate_config(tmp_path / "streamed", video_access="stream"), SCRIPTED,
                              vlm=ScriptedBackend(oracle))
    assert streamed.validation.ok and not streamed.failures
    snapshot = Path(load_episodes(source)[0]["root"])
    assert streamed.provenance["source_commit"] == snapshot.name
    requests = video_requests(hub)
    whole = [i for i, r in enumerate(requests) if not r.range]
    ranged = [i for i, r in enumerate(requests) if r.range]
    assert ranged and whole and max(ranged) < min(whole), "frames by range first, whole files only at write time"
    assert {r.path for r in requests if not r.range} == {r.path for r in requests if r.range}
    assert any(line.startswith("videos: fetched") for line in streamed.notes), streamed.notes
    videos = sorted(p.relative_to(tmp_path / "streamed") for p in (tmp_path / "streamed").rglob("*.mp4"))
    assert videos and all((snapshot / v).is_file() for v in videos)

    from lerobot_keyframes.review import ReviewConfig, build_review

    site = build_review(tmp_path / "streamed", tmp_path / "site", config=ReviewConfig(workers=1))
    assert site.is_file() and list((tmp_path / "site" / "assets").rglob("*.jpg"))

    downloaded = run_annotation(_annotate_config(tmp_path / "downloaded", video_access="download"), SCRIPTED,
                                vlm=ScriptedBackend(oracle))
    assert read_dataset_annotations(tmp_path / "streamed")[0] == read_dataset_annotations(tmp_path / "downloaded")[0]
    assert downloaded.rows_per_style == streamed.rows_per_style


def test_ray_stages_stream_a_hub_source(hub, source, sample_root, tmp_path) -> None:
    from lerobot_keyframes.annotate.executors.ray import decode_batch
    from lerobot_keyframes.annotate.run.prepare import prepare_run
    from lerobot_keyframes.transform import timestamp_column

    cfg = _annotate_config(tmp_path / "out", video_access="stream")
    run = prepare_run(cfg, SCRIPTED, check_backend=False)
    run.lock.release()
    decoded = [pickle.loads(b) for b in decode_batch({"episode": [pickle.dumps(r) for r in run.rows]}, run.plan,
                                                     SCRIPTED)["episode"]]
    local_cfg = AnnotateConfig(root=sample_root, out=tmp_path / "local")
    local_run = prepare_run(local_cfg, SCRIPTED, check_backend=False)
    local_run.lock.release()
    reference = [pickle.loads(b) for b in decode_batch({"episode": [pickle.dumps(r) for r in local_run.rows]},
                                                       local_run.plan, SCRIPTED)["episode"]]
    for got, want in zip(decoded, reference):
        for cam in got["camera_keys"]:
            assert got[timestamp_column(cam)] == want[timestamp_column(cam)]
            assert got[f"keyframes.{cam}"] == want[f"keyframes.{cam}"]
    assert not (Path(run.rows[0]["root"]) / "videos").exists()
    assert_only_ranges(hub)


def test_kill_9_while_streaming_then_resume_gives_the_same_rows(hub, source, hub_env, tmp_path) -> None:
    cache = tmp_path / "lk-cache"
    env = {**os.environ, **hub_env, "HF_HUB_OFFLINE": "0", "LEROBOT_KEYFRAMES_CACHE": str(cache),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}

    def keyframes(out: Path, cache_dir: Path) -> subprocess.Popen:
        args = [sys.executable, "-m", "lerobot_keyframes.cli", "keyframes", source, f"--out={out}", "--policy=fps:6",
                "--video_access=stream", "--use_cache=false", f"--cache_dir={tmp_path / 'ds-cache'}"]
        return subprocess.Popen(args, env={**env, "LEROBOT_KEYFRAMES_CACHE": str(cache_dir)},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    hub.set_latency(0.4, "resolve")  # a slow Hub: the run is still streaming when it is killed
    proc = keyframes(tmp_path / "killed", cache)
    deadline = time.monotonic() + 120
    while len(list(cache.rglob("*.bin"))) < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[0][-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed").exists()
    hub.set_latency(0.0, "resolve")
    cached = sorted(cache.rglob("*.bin"))
    assert cached
    damaged = bytearray(cached[-1].read_bytes())  # a cache entry that lost its content: must never be decoded
    damaged[len(damaged) // 2] ^= 0xFF
    cached[-1].write_bytes(bytes(damaged))

    resumed = keyframes(tmp_path / "resumed", cache)
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out[-3000:]
    assert "damaged" in out
    fresh = keyframes(tmp_path / "fresh", tmp_path / "fresh-cache")
    out, _ = fresh.communicate(timeout=300)
    assert fresh.returncode == 0, out[-3000:]
    import pyarrow.parquet as pq

    a = pq.read_table(sorted((tmp_path / "resumed" / "data").glob("*.parquet"))).to_pylist()
    b = pq.read_table(sorted((tmp_path / "fresh" / "data").glob("*.parquet"))).to_pylist()
    assert a == b and len(a) == 2


def test_a_shard_reads_only_the_ranges_of_its_episodes(hub, source, tmp_path) -> None:
    """An HF Jobs shard (`--only_episodes=... --push_staging_only=true`) writes no root, so it fetches no whole
    video: besides the header (its first 16 KiB and the moov) and the first sample (a decoder reads it when it
    opens), it fetches no byte of another episode."""
    from lerobot_keyframes.frames import make_frame_provider

    result = run_annotation(_annotate_config(tmp_path / "shard", only_episodes=(1,), video_access="stream",
                                             push_to_hub=True, new_repo_id="tester/sample-annotated",
                                             push_branch="shard-0", push_staging_only=True),
                            SCRIPTED, vlm=ScriptedBackend(oracle))
    assert result.validation is None and not result.failures and result.push
    assert_only_ranges(hub)
    rows = load_episodes(source).to_list()
    provider = make_frame_provider(rows, video_access="stream")
    for cam in rows[0]["camera_keys"]:
        table = remote.remote_video(provider.runtime().remote_file(
            *_episode_and_camera(rows[0], cam))).sample_table()
        order = table.presentation_order()
        first = max(int(table.end[0]), remote.HEAD_BYTES)  # the head request and the first sample end here
        episode0 = order[1: rows[0]["length"]]
        lo, hi = int(table.offset[episode0].min()), int(table.end[episode0].max())
        moov = int(table.end.max())  # the header lies after the last sample
        name = cam + "/chunk-000/file-000.mp4"
        for r in video_requests(hub):
            if name not in r.path:
                continue
            start, _, end = r.range.removeprefix("bytes=").partition("-")
            start, end = int(start), int(end) + 1
            assert end <= first or start >= moov or end <= lo or start >= hi, (r.range, lo, hi)
        assert any(int(r.range.removeprefix("bytes=").partition("-")[0]) >= hi for r in video_requests(hub)
                   if name in r.path and int(r.range.removeprefix("bytes=").partition("-")[0]) < moov)


def _episode_and_camera(row, key):
    from lerobot_keyframes.dataset.records import Episode

    ep = Episode.from_row(row)
    cam = ep.camera(key)
    return ep, cam, str(Path(ep.root) / cam.path)
