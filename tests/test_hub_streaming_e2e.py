"""Issue 21, end to end through the local Hub (a real HTTP server), in separate processes like a user's:

- the README's first snippet streams a Hub dataset (videos read by range only, nothing downloaded whole), gives the
  keyframes of the dataset on disk byte for byte, then runs offline from what it cached;
- `lerobot-keyframes annotate --repo_id=... --push_to_hub=true --create_pr=true` reads by range and opens a pull
  request on the source;
- a range that fails mid-episode under `--on_error=skip`: that episode fails, named with file, episode, camera, time
  and HTTP status, the others are written, and a run without the fault completes it from staging;
- an HF Jobs sharded run: `lerobot-keyframes job --shards 2` submits to the Hub's jobs API, each job's command runs
  through the hub script (`hub_scripts/annotate.py`) with the job's environment, reading only its episodes' ranges,
  and `merge` publishes the result.

Covered elsewhere: a pull request on the source from the library, moving no video
(tests/adversarial/test_hub_writers.py::test_annotate_opens_a_pull_request_on_the_source_and_moves_no_video);
offline after streaming, by the frame provider (tests/test_remote_video.py::
test_a_second_process_reads_the_range_cache_and_offline_works_after_streaming); a shard reading only its episodes'
ranges in-process (tests/test_remote_engines.py::test_a_shard_reads_only_the_ranges_of_its_episodes).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli_readme import blocks, run_python

from lerobot_keyframes.dataset import load_episodes
from lerobot_keyframes.dataset.remote import mp4
from lerobot_keyframes.dataset.remote.video import HEAD_BYTES as HEAD
from lerobot_keyframes.hub.push import push_dataset
from lerobot_keyframes.testing.fake_openai import FakeOpenAIServer
from lerobot_keyframes.testing.local_hub import LocalHub

pytest_plugins = ("hub_fixtures",)

REPO = Path(__file__).resolve().parents[1]
FRONT = "observation.images.front"
FAST = ["--plan.n_task_rephrasings=2", "--plan.min_subtask_seconds=0.3", "--interjections.interjection_min_t=0.1"]


def video_gets(hub: LocalHub, since: int = 0) -> list:
    return [r for r in hub.requests[since:] if r.route == "resolve" and ".mp4" in r.path and r.method == "GET"]


def span(record) -> tuple[int, int]:
    start, _, end = record.range.removeprefix("bytes=").partition("-")
    return int(start), int(end) + 1


def table(path: Path) -> mp4.SampleTable:
    data = path.read_bytes()
    (start, end), = [(o, e) for kind, o, _, e in mp4.iter_boxes(data, 0, len(data)) if kind == b"moov"]
    return mp4.parse_moov(data[start:end], len(data))


def cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 600, script: list[str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, *(script or ["-m", "lerobot_keyframes.cli"]), *args]
    env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("LEROBOT_KEYFRAMES_CRASH_AT", None)
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)


@pytest.fixture
def hub_sample(local_hub: LocalHub, sample_root: Path) -> str:
    push_dataset(sample_root, "tester/sample", private=True)
    return "tester/sample"


@pytest.fixture
def env(hub_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """A subprocess's environment: the local Hub, its own range cache (never the user's)."""
    return {**hub_env, "LEROBOT_KEYFRAMES_CACHE": str(tmp_path / "lk-cache"), "HF_HUB_OFFLINE": "0"}


def test_readme_first_snippet_streams_matches_the_local_frames_and_runs_offline(local_hub: LocalHub, hub_sample,
                                                                              sample_root: Path, env,
                                                                              tmp_path: Path) -> None:
    snippet = blocks("python")[0]
    assert 'lk.load_episodes("user/dataset")' in snippet and "episodes.map(transform" in snippet
    save = "\nkeyframes.to_parquet('keyframes.parquet')\n"
    online_dir, local_dir, offline_dir = (tmp_path / d for d in ("online", "local", "offline"))
    for d in (online_dir, local_dir, offline_dir):
        d.mkdir()
    online = run_python(snippet.replace('"user/dataset"', f'"{hub_sample}"') + save, env, online_dir)
    assert online.returncode == 0, online.stderr[-3000:]
    assert "keyframes.observation.images.front" in online.stdout

    gets = video_gets(local_hub)
    assert gets and all(r.range for r in gets), "the snippet must read the videos by range only"
    sent = sum(r.bytes for r in gets)
    assert sent < 0.6 * sum(p.stat().st_size for p in sample_root.rglob("*.mp4"))
    snapshots = list((tmp_path / "hf-cache" / "hub").glob("datasets--tester--sample/snapshots/*"))
    assert snapshots and not any((s / "videos").exists() for s in snapshots), "no video downloaded whole"

    local = run_python(snippet.replace('"user/dataset"', f'"{sample_root}"') + save, env, local_dir)
    assert local.returncode == 0, local.stderr[-3000:]
    import pyarrow.parquet as pq

    streamed = pq.read_table(online_dir / "keyframes.parquet")
    reference = pq.read_table(local_dir / "keyframes.parquet")
    for cam in ("observation.images.front", "observation.images.wrist"):
        for column in (f"keyframes.{cam}", f"keyframe_timestamps.{cam}"):  # JPEG bytes of the same frames
            assert streamed.column(column).to_pylist() == reference.column(column).to_pylist()

    before = len(local_hub.requests)
    offline_env = {**env, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}
    offline = run_python(snippet.replace('"user/dataset"', f'"{hub_sample}"') + save, offline_env, offline_dir)
    assert offline.returncode == 0, offline.stderr[-3000:]
    assert offline.stdout == online.stdout and len(local_hub.requests) == before
    assert pq.read_table(offline_dir / "keyframes.parquet").equals(streamed)


@pytest.fixture
def faststart_source(local_hub: LocalHub, sample_root: Path, tmp_path: Path) -> tuple[str, Path]:
    """`tester/src`: the sample dataset with its headers first in each mp4, like files lerobot writes."""
    from test_remote_video import _remux

    root = tmp_path / "src"
    shutil.copytree(sample_root, root)
    for path in root.rglob("*.mp4"):
        _remux(path, "faststart")
    push_dataset(root, "tester/src", private=False)
    return "tester/src", root


def annotate_args(repo: str, api_base: str, *extra: str) -> list[str]:
    return ["annotate", f"--repo_id={repo}", "--vlm.backend=openai", "--vlm.model_id=fake-model",
            f"--vlm.api_base={api_base}", "--vlm.max_retries=0", "--video_access=stream", *FAST, *extra]


def test_cli_annotate_streams_and_opens_a_pull_request_on_the_source(local_hub: LocalHub, faststart_source, env,
                                                                    tmp_path: Path) -> None:
    repo, _ = faststart_source
    main = local_hub.repo(repo).branches["main"]
    with FakeOpenAIServer(plausible=True) as server:
        run = cli(annotate_args(repo, server.api_base, f"--out={tmp_path / 'out'}", "--push_to_hub=true",
                                "--create_pr=true"), env, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "pull request refs/pr/1" in run.stdout + run.stderr
    assert local_hub.repo(repo).branches["main"] == main and list(local_hub.repo(repo).pull_requests) == ["1"]
    gets = video_gets(local_hub)
    assert gets and all(r.range for r in gets), "frames by range, and no whole video for a pull request"


def test_a_range_fault_mid_episode_fails_that_episode_only_and_a_rerun_completes_it(local_hub: LocalHub,
                                                                                    faststart_source, env,
                                                                                    tmp_path: Path) -> None:
    repo, root = faststart_source
    rows = load_episodes(root).to_list()
    cam = next(c for c in rows[1]["cameras"] if c["key"] == FRONT)
    samples = table(root / cam["path"])
    middle = int(round((cam["from_timestamp"] + rows[1]["length"] / rows[1]["fps"] / 2) * rows[1]["fps"]))
    start = int(samples.offset[samples.presentation_order()[middle]])
    assert start > int(samples.offset.min())  # the header is first: only samples lie past this offset
    # every range of the front camera from the middle of episode 1 on: HTTP 503, huggingface_hub's retries included
    local_hub.fail_range(status=503, times=10_000, match=f"{FRONT}/chunk-000/file-000.mp4", min_start=start)
    out = tmp_path / "out"
    with FakeOpenAIServer(plausible=True) as server:
        args = annotate_args(repo, server.api_base, f"--out={out}", "--on_error=skip", "--quality.enabled=false")
        first = cli(args, env, tmp_path)
        text = first.stdout + first.stderr
        line = next((x for x in text.splitlines() if "HTTP 503" in x), "")
        assert "episode 1" in line and FRONT in line and "file-000.mp4" in line, text[-3000:]
        assert "t=[" in line and "bytes " in line  # the episode times asked, the bytes that failed
        assert "1 of 2 episodes" in text or "annotated 1" in text, text[-3000:]
        from lerobot_keyframes.language import read_dataset_annotations

        annotations, _ = read_dataset_annotations(out)
        assert annotations[0].rows and not (annotations.get(1) and annotations[1].rows)

        local_hub.clear_faults()
        second = cli(args, env, tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "from staging" in second.stdout + second.stderr
    annotations, _ = read_dataset_annotations(out)
    assert annotations[0].rows and annotations[1].rows


def test_hf_jobs_shards_run_the_hub_script_and_read_only_their_episodes(local_hub: LocalHub, faststart_source, env,
                                                                       tmp_path: Path) -> None:
    from lerobot_keyframes.annotate.executors.jobs import ShardedRun
    from lerobot_keyframes.cli import main as cli_main

    repo, root = faststart_source
    run_file = tmp_path / "run-{run_id}.json"
    with FakeOpenAIServer(plausible=True) as server:
        flags = annotate_args(repo, server.api_base, "--push_to_hub=true", "--new_repo_id=tester/annotated")[1:]
        assert cli_main(["job", "--shards", "2", "--job.detach=true", f"--run_file={run_file}", "--", *flags]) == 0
        (saved,) = tmp_path.glob("run-*.json")
        sharded = ShardedRun.load(saved)
        assert len(local_hub.jobs) == 2 and sorted(s.episodes for s in sharded.shards) == [(0,), (1,)]
        reads: dict[tuple[int, ...], list] = {}
        for job in local_hub.jobs.values():  # what each HF Job runs, here: its command through the hub script
            spec = job["spec"]
            args = spec["command"][4:]
            assert spec["command"][:2] == ["bash", "-c"] and "--push_staging_only=true" in args
            machine = tmp_path / f"job-{len(reads)}"  # each job runs on its own machine: its own folder and caches
            job_env = {**env, **spec.get("environment", {}), **spec.get("secrets", {}),
                       "HF_HUB_CACHE": str(machine / "hub"), "LEROBOT_KEYFRAMES_CACHE": str(machine / "lk")}
            episodes = tuple(int(e) for a in args if a.startswith("--only_episodes=")
                             for e in a.split("=", 1)[1].split(","))
            since = len(local_hub.requests)
            shard = cli(args, job_env, machine / "work", script=[str(REPO / "hub_scripts" / "annotate.py")])
            assert shard.returncode == 0, shard.stderr[-3000:]
            reads[episodes] = video_gets(local_hub, since)
        merged = cli(["merge", f"--run_file={saved}", f"--out={tmp_path / 'merged'}"], env, tmp_path)
    assert merged.returncode == 0, merged.stderr[-3000:]

    rows = load_episodes(root).to_list()
    for cam in rows[0]["camera_keys"]:
        path = rows[0]["cameras"][rows[0]["camera_keys"].index(cam)]["path"]
        samples = table(root / path)
        order = samples.presentation_order()
        head = max(int(samples.end[0]), HEAD)  # the head request (the header, first here) and the first sample
        bounds = {}
        for row in rows:
            own = order[row["dataset_from_index"]: row["dataset_to_index"]]
            bounds[row["episode_index"]] = (int(samples.offset[own].min()), int(samples.end[own].max()))
        for episodes, gets in reads.items():
            mine = [r for r in gets if path in r.path]
            assert mine and all(r.range for r in mine), "a shard reads by range only (it writes no root)"
            (other,) = [e for e in bounds if e not in episodes]
            lo, hi = bounds[other]
            for r in mine:
                start, end = span(r)
                assert end <= max(head, lo) or start >= hi or end <= lo, (episodes, r.range, (lo, hi))
            assert any(span(r)[0] >= bounds[episodes[0]][0] for r in mine)

    from lerobot_keyframes.language import read_dataset_annotations

    annotations, _ = read_dataset_annotations(tmp_path / "merged")
    assert annotations[0].rows and annotations[1].rows
