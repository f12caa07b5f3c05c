"""HF Jobs submission: the exact run_job/run_uv_job call, refusals, frame-balanced shards, resubmitting failures."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import HfApi, JobInfo

from lerobot_keyframes.annotate.executors.jobs import (
    BOOTSTRAP,
    PACKAGE_ENV,
    RUN_ID_ENV,
    SHARD_ENV,
    JobConfig,
    ShardedRun,
    episode_lengths,
    job_package,
    package_requirement,
    plan_shards,
    resubmit_failed_shards,
    strip_job_flags,
    submit_annotation_job,
    submit_sharded_annotation,
)
from lerobot_keyframes.annotate.run.staging import Staging
from lerobot_keyframes.cli import main as cli_main
from lerobot_keyframes.dataset import load_episodes
from lerobot_keyframes.hub.errors import HubError
from lerobot_keyframes.hub.merge import push_shard_staging
from lerobot_keyframes.hub.push import push_dataset
from lerobot_keyframes.testing.local_hub import LocalHub

pytest_plugins = ("hub_fixtures",)  # the local_hub fixture

ARGS = ["--repo_id=tester/src", "--push_to_hub=true", "--new_repo_id=tester/annotated",
        "--vlm.model_id=Qwen/Qwen2.5-VL-7B-Instruct"]


class CapturingApi(HfApi):
    """A real HfApi on the local Hub (repo checks go over HTTP) whose job calls are captured, not run."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.stages: dict[str, str] = {}

    def _info(self, job_id: str, stage: str) -> JobInfo:
        return JobInfo(id=job_id, owner={"id": "u1", "name": "tester", "type": "user"}, status={"stage": stage},
                       endpoint=self.endpoint)

    def run_job(self, **kwargs: Any) -> JobInfo:
        self.calls.append(("run_job", kwargs))
        return self._info(f"job{len(self.calls)}", "SCHEDULING")

    def run_uv_job(self, script: str, **kwargs: Any) -> JobInfo:
        self.calls.append(("run_uv_job", {"script": script, **kwargs}))
        return self._info(f"job{len(self.calls)}", "SCHEDULING")

    def fetch_job_logs(self, *, job_id: str, namespace: str | None = None, follow: bool = False,
                       token: Any = None):
        assert follow and namespace == "tester"
        yield from ["annotating 2 episodes", "pushed tester/annotated"]

    def inspect_job(self, *, job_id: str, namespace: str | None = None, token: Any = None) -> JobInfo:
        return self._info(job_id, self.stages.get(job_id, "COMPLETED"))


@pytest.fixture
def source(local_hub: LocalHub, sample_root: Path, tmp_path: Path) -> str:
    root = tmp_path / "src"
    shutil.copytree(sample_root, root)
    push_dataset(root, "tester/src", private=False)
    return "tester/src"


def test_run_job_call_is_exact_and_logs_are_followed(source: str) -> None:
    api, printed = CapturingApi(), []
    config = JobConfig(flavor="a10g-large", timeout="3h", labels=("team=robots",))
    handle = submit_annotation_job(config, ARGS, api, print_fn=printed.append)
    assert len(api.calls) == 1
    kind, call = api.calls[0]
    assert kind == "run_job"
    assert call == {
        "image": "vllm/vllm-openai:latest",
        "command": ["bash", "-c", BOOTSTRAP, "lerobot-keyframes-job", *ARGS, "--vlm.backend=vllm"],
        "env": {RUN_ID_ENV: handle.run_id, "PYTHONUNBUFFERED": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                PACKAGE_ENV: "lerobot_keyframes==0.1.0"},
        "secrets": {"HF_TOKEN": LocalHub.TOKEN},
        "flavor": "a10g-large",
        "timeout": "3h",
        "labels": {"app": "lerobot-keyframes", "lerobot-keyframes-run": handle.run_id, "source": "tester-src",
                   "target": "tester-annotated", "team": "robots"},
        "name": f"lerobot-keyframes-{handle.run_id}",
        "namespace": None,
    }
    assert "uv pip install --system" in BOOTSTRAP and "python3 -m lerobot_keyframes.cli annotate" in BOOTSTRAP
    assert "vllm" not in BOOTSTRAP.split("annotate")[0].replace("vllm-openai", "")  # the image's own vLLM
    warning = job_package()[1]  # this suite runs from a source tree (editable install): the job says so
    assert warning is not None and printed[0] == f"warning: {warning}"
    assert printed[1] == f"Submitted job: job1\n  url: {api.endpoint}/jobs/tester/job1"
    assert printed[2:] == ["annotating 2 episodes", "pushed tester/annotated"]
    assert handle.stage == "COMPLETED" and handle.url.endswith("/jobs/tester/job1")
    assert LocalHub.TOKEN not in json.dumps({k: v for k, v in call.items() if k != "secrets"})


def test_uv_runner_submits_the_hub_script(source: str) -> None:
    api = CapturingApi()
    url = "https://huggingface.co/datasets/tester/scripts/raw/0123abc/annotate.py"
    config = JobConfig(runner="uv", script=url, detach=True, flavor="l4x1", timeout="45m")
    handle = submit_annotation_job(config, [*ARGS, "--vlm.backend=vllm"], api, print_fn=lambda s: None)
    kind, call = api.calls[0]
    assert kind == "run_uv_job" and call["script"] == url
    assert call["script_args"] == [*ARGS, "--vlm.backend=vllm"]
    assert call["image"] == "vllm/vllm-openai:latest" and call["timeout"] == "45m" and call["flavor"] == "l4x1"
    assert call["secrets"] == {"HF_TOKEN": LocalHub.TOKEN} and PACKAGE_ENV not in call["env"]
    assert handle.stage == "SCHEDULING"  # detached: no logs, no waiting
    with pytest.raises(HubError, match="--job.script"):
        submit_annotation_job(JobConfig(runner="uv"), ARGS, api)


def test_runs_that_would_waste_the_job_are_refused(source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    api = CapturingApi()
    local_dir = tmp_path / "models" / "qwen"
    local_dir.mkdir(parents=True)
    refused = {
        "--push_to_hub=true": ["--repo_id=tester/src"],
        "thrown away": ["--repo_id=tester/src", "--push_to_hub=false"],
        "Add --push_to_hub=true": ["--repo_id=tester/src", "--push_to_hub=0"],
        "path on this machine": ["--root=/data/ds", "--push_to_hub=true"],
        "local path": ["--repo_id=tester/src", "--push_to_hub", "true", f"--vlm.model_id={local_dir}"],
        "not on the Hub": ["--repo_id=tester/nope", "--push_to_hub=true"],
        "looks like a Hugging Face token": [*ARGS, "--vlm.api_base=http://x?key=hf_abcdefghijklmnopqrst"],
        "visible in the job": [*ARGS, "--vlm.api_key=sk-123"],
        "needs the source as a Hub dataset": ["--push_to_hub=true"],
    }
    for phrase, args in refused.items():
        with pytest.raises(HubError, match=phrase):
            submit_annotation_job(JobConfig(), args, api)
    with pytest.raises(ValueError, match="timeout"):
        JobConfig(timeout="0")
    with pytest.raises(ValueError, match=r"--job.flavor=a10g-larg is not an HF Jobs flavor \(did you mean a10g-large\?\)"):
        JobConfig(flavor="a10g-larg")
    with pytest.raises(ValueError, match="--job.runner must be run_job or uv"):
        JobConfig(runner="docker")  # type: ignore[arg-type]
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    with pytest.raises(HubError, match="needs a Hugging Face token"):
        submit_annotation_job(JobConfig(), ARGS, api)
    assert api.calls == []  # nothing was submitted


def test_the_job_spec_on_the_wire(local_hub: LocalHub, source: str) -> None:
    handle = submit_annotation_job(JobConfig(detach=True, timeout="2h", flavor="l40sx1"), ARGS, HfApi(),
                                   print_fn=lambda s: None)
    (job,) = local_hub.jobs.values()
    spec = job["spec"]
    assert spec["dockerImage"] == "vllm/vllm-openai:latest" and spec["flavor"] == "l40sx1"
    assert spec["timeoutSeconds"] == 7200 and spec["secrets"] == {"HF_TOKEN": LocalHub.TOKEN}
    assert spec["command"][:4] == ["bash", "-c", BOOTSTRAP, "lerobot-keyframes-job"]
    assert spec["labels"]["name"] == f"lerobot-keyframes-{handle.run_id}" and "HF_TOKEN" not in spec["environment"]
    assert handle.url == f"{local_hub.url}/jobs/tester/{handle.job_id}" and handle.stage == "RUNNING"


def test_shards_balance_frames_not_episode_counts() -> None:
    lengths = {0: 1000, **{i: 100 for i in range(1, 11)}}
    shards = plan_shards(lengths, 2)
    assert [s.frames for s in shards] == [1000, 1000]
    assert shards[0].episodes == (0,) and shards[1].episodes == tuple(range(1, 11))
    assert plan_shards(lengths, 2) == shards  # deterministic
    assert len(plan_shards([5, 6], 4)) == 2  # never an empty shard
    rng = random.Random(0)
    for _ in range(50):
        lens = {e: rng.randint(1, 500) for e in range(rng.randint(3, 40))}
        n = rng.randint(2, 6)
        plan = plan_shards(lens, n)
        assert sorted(e for s in plan for e in s.episodes) == sorted(lens)
        assert all(s.frames == sum(lens[e] for e in s.episodes) for s in plan)
        if len(lens) >= n:
            assert max(s.frames for s in plan) - min(s.frames for s in plan) <= max(lens.values())


def test_sharded_run_and_resubmitting_only_failed_shards(local_hub: LocalHub, source: str, tmp_path: Path) -> None:
    api = CapturingApi()
    lengths = {0: 300, 1: 120, 2: 110, 3: 100, 4: 90, 5: 60, 6: 20}
    run_file = tmp_path / "run-{run_id}.json"
    printed: list[str] = []
    run = submit_sharded_annotation(JobConfig(shards=3, flavor="l4x1"), ARGS, api, lengths=lengths,
                                    run_file=run_file, print_fn=printed.append)
    package, warning = job_package()  # from a source tree: said once, the same package for every shard
    assert [p for p in printed if p.startswith("warning:")] == [f"warning: {warning}"]
    assert {call["env"][PACKAGE_ENV] for _, call in api.calls} == {package}
    saved = tmp_path / f"run-{run.run_id}.json"
    assert ShardedRun.load(saved) == run
    assert [sum(lengths[e] for e in s.episodes) for s in run.shards] == [s.frames for s in run.shards] == [300, 270, 230]
    assert len(api.calls) == 3
    for handle, (_, call) in zip(run.shards, api.calls):
        args = call["command"][4:]
        assert f"--only_episodes={','.join(map(str, handle.episodes))}" in args
        assert f"--push_branch={handle.branch}" in args and "--push_staging_only=true" in args
        assert args.count("--new_repo_id=tester/annotated") == 1
        assert call["env"][SHARD_ENV] == f"{handle.shard}/3" and call["labels"]["shard"] == f"{handle.shard}-of-3"
        assert call["env"][RUN_ID_ENV] == run.run_id

    # shard 0 finished (its branch has the marker), shard 1's job failed, shard 2 is still running
    staging = Staging(tmp_path / "staging0")
    for e in run.shards[0].episodes:
        staging.write(e, "plan", "k", [{"role": "assistant", "content": "x", "style": "subtask", "timestamp": 0.0}])
    push_shard_staging(staging.dir, "tester/annotated", branch=run.shards[0].branch, episodes=run.shards[0].episodes)
    api.stages = {run.shards[0].job_id: "COMPLETED", run.shards[1].job_id: "ERROR", run.shards[2].job_id: "RUNNING"}
    failed_job = run.shards[1].job_id
    assert resubmit_failed_shards(run, api, run_file=saved, print_fn=lambda s: None) == [1]
    assert len(api.calls) == 4
    args = api.calls[3][1]["command"][4:]
    assert f"--only_episodes={','.join(map(str, run.shards[1].episodes))}" in args
    assert f"--push_branch={run.shards[1].branch}" in args
    assert api.calls[3][1]["env"][PACKAGE_ENV] == package  # the run record keeps the resolved package
    assert run.shards[1].job_id == "job4" != failed_job and ShardedRun.load(saved).shards[1].job_id == "job4"


def test_cli_job_single_and_sharded(local_hub: LocalHub, source: str, sample_root: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    local = load_episodes(sample_root)
    assert episode_lengths("tester/src") == dict(zip(local["episode_index"], local["length"]))
    assert cli_main(["job", "--job.flavor=a10g-small", "--job.detach=true", "--", *ARGS]) == 0
    assert "url: " in capsys.readouterr().out and len(local_hub.jobs) == 1
    run_file = tmp_path / "run-{run_id}.json"
    assert cli_main(["job", "--shards", "2", f"--run_file={run_file}", "--", *ARGS]) == 0
    out = capsys.readouterr().out
    assert out.count("Submitted shard") == 2 and len(local_hub.jobs) == 3
    (saved,) = tmp_path.glob("run-*.json")
    assert sorted(s.episodes for s in ShardedRun.load(saved).shards) == [(0,), (1,)]
    assert cli_main(["job", "--", "--repo_id=tester/src"]) == 2
    assert "--push_to_hub=true" in capsys.readouterr().err

    # not detached: the logs are followed over the wire until the job ends; a failed job exits non-zero
    local_hub.job_stage, local_hub.job_logs = "COMPLETED", ["annotating 2 episodes", "pushed tester/annotated"]
    assert cli_main(["job", "--", *ARGS]) == 0
    assert capsys.readouterr().out.splitlines()[-2:] == local_hub.job_logs
    local_hub.job_stage, local_hub.job_logs = "ERROR", ["CUDA out of memory"]
    assert cli_main(["job", "--", *ARGS]) == 1
    assert "CUDA out of memory" in capsys.readouterr().out


def test_hub_script_is_a_pep723_pass_through_to_annotate() -> None:
    import re
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "hub_scripts" / "annotate.py"
    text = script.read_text()
    block = text.split("# /// script\n", 1)[1].split("# ///\n", 1)[0]
    dependencies = re.findall(r'^#\s+"([^"]+)",?$', block, re.M)
    assert any(d.startswith("lerobot_keyframes") for d in dependencies)
    assert any(d.startswith("vllm") for d in dependencies)
    out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("usage: lerobot-keyframes annotate")


def test_annotate_argv_for_the_job_drops_the_job_flags() -> None:
    import argparse

    from lerobot_keyframes.cli.annotate import add_job_flags, job_config_from_args

    argv = ["--repo_id=tester/src", "--job.flavor=a10g-large", "--job.timeout", "4h", "--push_to_hub=true",
            "--shards", "3", "--job.detach=true"]
    assert strip_job_flags(argv) == ["--repo_id=tester/src", "--push_to_hub=true"]
    parser = argparse.ArgumentParser()
    add_job_flags(parser)
    args, _ = parser.parse_known_args(argv)
    assert job_config_from_args(args) == JobConfig(flavor="a10g-large", timeout="4h", detach=True)
    assert job_config_from_args(parser.parse_known_args(["--repo_id=x/y"])[0]) is None


def test_the_job_installs_the_code_running_here() -> None:
    site = Path("/usr/lib/python3/site-packages/lerobot_keyframes")
    tree = Path("/home/me/src/lerobot_keyframes/lerobot_keyframes")
    git = {"url": "https://github.com/me/lerobot_keyframes", "vcs_info": {"vcs": "git", "commit_id": "ab12cd"}}
    assert package_requirement(git, site) == ("lerobot_keyframes @ git+https://github.com/me/lerobot_keyframes@ab12cd", None)
    wheel = {"url": "https://example.org/lerobot_keyframes-0.1.0-py3-none-any.whl", "archive_info": {}}
    assert package_requirement(wheel, site) == (f"lerobot_keyframes @ {wheel['url']}", None)
    assert package_requirement(None, site) == ("lerobot_keyframes==0.1.0", None)  # from PyPI
    for direct, where in ((None, tree), ({"url": "file:///home/me/src", "dir_info": {"editable": True}}, site)):
        package, warning = package_requirement(direct, where)
        assert package == "lerobot_keyframes==0.1.0" and "cannot install" in warning and "--job.package=" in warning


def test_an_explicit_package_is_installed_without_a_warning(source: str) -> None:
    api, printed = CapturingApi(), []
    config = JobConfig(package="lerobot_keyframes @ git+https://example.org/x@123", detach=True)
    submit_annotation_job(config, ARGS, api, print_fn=printed.append)
    assert api.calls[0][1]["env"][PACKAGE_ENV] == "lerobot_keyframes @ git+https://example.org/x@123"
    assert not any(p.startswith("warning:") for p in printed)


def test_the_flavor_set_is_the_hubs() -> None:
    from typing import get_args

    from huggingface_hub import JobHardware, JobStage

    from lerobot_keyframes.hub.jobs import TERMINAL_STAGES, Flavor, known_flavors
    from lerobot_keyframes.hub.jobs import JobStage as OurStage

    hub_flavors = {h.value for h in JobHardware}
    assert set(get_args(Flavor)) <= hub_flavors <= known_flavors()  # ours are real; newer Hub ones are accepted
    assert {s.value for s in JobStage} | {"DRY_RUN"} == set(get_args(OurStage)) >= set(TERMINAL_STAGES)
    assert JobConfig(flavor="h200").flavor == "h200"
