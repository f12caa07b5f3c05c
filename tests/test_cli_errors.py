"""Every user mistake: exit 2 and one actionable first line on stderr (the traceback only with -v); quiet logs.

Each case runs the console script as a subprocess, the way a user meets it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ("hub_fixtures",)

CLI = [sys.executable, "-m", "lerobot_keyframes.cli"]
PREFIX = "lerobot-keyframes annotate: error: "


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {})}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, env=full)


def first_line(proc: subprocess.CompletedProcess[str]) -> str:
    return proc.stderr.splitlines()[0] if proc.stderr.strip() else ""


def assert_user_error(proc: subprocess.CompletedProcess[str], start: str, *contains: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    line = first_line(proc)
    assert line.startswith(start), proc.stderr[-2000:]
    for text in contains:
        assert text in line, (text, line)
    assert "Traceback" not in proc.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_annotate_without_arguments() -> None:
    assert_user_error(run("annotate"), PREFIX + "set --root (a local dataset) or --repo_id")


def test_push_to_hub_without_new_repo_id(sample_root: Path) -> None:
    assert_user_error(run("annotate", f"--root={sample_root}", "--push_to_hub=true"),
                      PREFIX + "--push_to_hub=true needs --new_repo_id=<user/name>")


def test_unknown_backend(sample_root: Path) -> None:
    assert_user_error(run("annotate", f"--root={sample_root}", "--vlm.backend=foo"),
                      PREFIX + "--vlm.backend='foo': choose one of transformers, vllm, openai")


def test_short_camera_key_names_the_full_one(sample_root: Path) -> None:
    assert_user_error(run("annotate", f"--root={sample_root}", "--vlm.camera_key=front"),
                      PREFIX + "--vlm.camera_key=front is not a camera of the dataset",
                      "did you mean --vlm.camera_key=observation.images.front?")


def test_missing_extra(sample_root: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    assert_user_error(run("annotate", f"--root={sample_root}", "--vlm.backend=vllm"),
                      PREFIX + "--vlm.backend=vllm needs the Python package 'vllm'",
                      "pip install 'lerobot_keyframes[vllm]'")


def test_model_not_cached_offline(sample_root: Path, tmp_path: Path) -> None:
    proc = run("annotate", f"--root={sample_root}", "--vlm.model_id=nobody/no-such-model",
               env={"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "cache")})
    assert_user_error(proc, PREFIX + "--vlm.model_id=nobody/no-such-model: not in the Hugging Face cache")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_model_not_on_the_hub_and_dataset_not_on_the_hub(sample_root: Path, hub_env: dict[str, str]) -> None:
    proc = run("annotate", f"--root={sample_root}", "--vlm.model_id=nobody/no-such-model", env=hub_env)
    assert_user_error(proc, PREFIX + "--vlm.model_id=nobody/no-such-model: no such model on the Hub")
    proc = run("annotate", "--repo_id=tester/no-such-dataset", env=hub_env)
    assert_user_error(proc, PREFIX + "tester/no-such-dataset: no such dataset on the Hub")
    proc = run("info", "tester/no-such-dataset", env=hub_env)
    assert_user_error(proc, "lerobot-keyframes info: error: tester/no-such-dataset: no such dataset on the Hub")


def test_openai_server_that_does_not_answer_is_found_first(sample_root: Path, tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "out"
    proc = run("annotate", f"--root={sample_root}", f"--out={out}", "--vlm.backend=openai",
               f"--vlm.api_base=http://127.0.0.1:{port}/v1", "--vlm.auto_serve=false")
    assert_user_error(proc, PREFIX + f"--vlm.api_base=http://127.0.0.1:{port}/v1: no OpenAI-compatible server answers")
    assert "attempt" not in proc.stderr and not out.exists() and not Path(f"{out}.staging").exists()


def test_typo_suggests_the_nearest_flag_and_prints_the_usage(sample_root: Path) -> None:
    proc = run("annotate", f"--root={sample_root}", "--vlm.camra_key=x")
    assert_user_error(proc, PREFIX + "unrecognized argument --vlm.camra_key; did you mean --vlm.camera_key?")
    assert proc.stderr.splitlines()[1].startswith("usage: lerobot-keyframes annotate")
    proc = run("validate", str(sample_root), "--epsiodes=0")
    assert_user_error(proc, "lerobot-keyframes validate: error: unrecognized argument --epsiodes; did you mean "
                      "--episodes?")
    proc = run("sample", "x", "--codec=vp9")
    assert_user_error(proc, "lerobot-keyframes sample: error: argument --codec: invalid choice: 'vp9'")


def test_bad_values_are_one_line() -> None:
    assert_user_error(run("annotate", "--root=x", "--only_episodes=0-x"),
                      PREFIX + "argument --only_episodes: expected integers or ranges like 0,3,5-8, got '0-x'")
    assert_user_error(run("annotate", "--root=x", "--vqa.enabled=maybe"),
                      PREFIX + "argument --vqa.enabled: expected true or false, got 'maybe'")


def test_bad_config_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("vlm:\n  modle_id: x\n")
    assert_user_error(run("annotate", f"--config_path={bad}"),
                      PREFIX + f"--config_path={bad}: unknown setting 'vlm.modle_id'; did you mean vlm.model_id?")
    assert_user_error(run("annotate", f"--config_path={tmp_path / 'none.yaml'}"), PREFIX + "--config_path=")


def test_verbose_adds_the_traceback() -> None:
    proc = run("annotate", "-v")
    assert proc.returncode == 2 and "Traceback" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(PREFIX + "set --root")


def test_merge_with_missing_shards(sample_root: Path, hub_env: dict[str, str], local_hub, tmp_path: Path) -> None:
    from lerobot_keyframes.hub.push import push_dataset

    push_dataset(sample_root, "tester/src", private=True)
    local_hub.create_repo("tester/final", private=True, owner="tester")
    proc = run("merge", "--repo_id=tester/src", "--new_repo_id=tester/final", "--branches=shard-a,shard-b",
               f"--out={tmp_path / 'merged'}", env=hub_env)
    assert_user_error(proc, "lerobot-keyframes merge: error: ", "shard-a", "does not exist")


def test_hub_runs_do_not_log_every_request_and_offline_uses_the_cache(
        sample_root: Path, hub_env: dict[str, str], tmp_path: Path) -> None:
    from lerobot_keyframes.hub.push import push_dataset

    push_dataset(sample_root, "tester/src", private=True)
    proc = run("info", "tester/src", env=hub_env)
    assert proc.returncode == 0, proc.stderr
    assert "episodes  2" in proc.stdout
    assert "HTTP Request" not in proc.stderr and "httpx" not in proc.stderr, proc.stderr
    offline = run("info", "tester/src", env={**hub_env, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"})
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout == proc.stdout
    missing = run("info", "tester/other", env={**hub_env, "HF_HUB_OFFLINE": "1"})
    assert_user_error(missing, "lerobot-keyframes info: error: tester/other: not in the Hugging Face cache and "
                      "HF_HUB_OFFLINE=1")
    loud = run("-vv", "info", "tester/src", env=hub_env)
    assert loud.returncode == 0 and "HTTP Request" in loud.stderr  # -vv shows them


def test_quiet_and_verbose_levels(sample_root: Path, tmp_path: Path) -> None:
    quiet = run("-q", "info", str(sample_root))
    assert quiet.returncode == 0 and quiet.stderr == ""
    proc = run("annotate", f"--root={sample_root}", "--vlm.reasoning_effort=high", "-q", "--vlm.backend=foo")
    assert first_line(proc).startswith(PREFIX)  # -q: the warnings are gone, the error stays
    proc = run("annotate", f"--root={sample_root}", "--vlm.reasoning_effort=high", "--vlm.model_id=nobody/x",
               env={"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "c")})
    lines = proc.stderr.splitlines()
    assert lines[0].split(" ", 2)[2] == ("WARNING lerobot_keyframes.cli: --vlm.reasoning_effort='high' is sent to OpenAI-compatible "
                        "servers only (lerobot-annotate's openai backend); --vlm.backend=transformers ignores it: cap "
                        "thinking with --vlm.chat_template_kwargs")
    assert sum("--vlm.reasoning_effort" in line for line in lines) == 1 and lines[-1].startswith(PREFIX)


def test_job_dry_run_prints_the_spec_of_lerobots_docs_command(hub_env: dict[str, str]) -> None:
    from test_cli_parity import LEROBOT_DOCS_JOB

    proc = run("annotate", *LEROBOT_DOCS_JOB, "--job.dry_run=true", env=hub_env)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    spec = __import__("json").loads(out.split("dry run (nothing submitted): ", 1)[1])
    assert spec["flavor"] == "h200" and spec["timeout"] == "2h" and spec["secrets"] == ["HF_TOKEN"]
    assert hub_env["HF_TOKEN"] not in out and hub_env["HF_TOKEN"] not in proc.stderr
    command = spec["command"]
    assert "--vlm.serve_ready_timeout_s=1800" in command and not any(a.startswith("--job.") for a in command)
    assert out.count("cannot install") <= 1  # the package warning, once
    assert "--vlm.num_gpus" not in proc.stderr and "--vlm.serve_command" not in proc.stderr  # both mean something


def test_keyframes_push_has_no_local_root_column(sample_root: Path, hub_env: dict[str, str]) -> None:
    from huggingface_hub import HfApi, hf_hub_download

    from lerobot_keyframes.hub.push import push_dataset

    push_dataset(sample_root, "tester/src", private=True)
    proc = run("keyframes", "tester/src", "--policy=uniform:2", "--cameras=observation.images.front",
               "--push_to_hub=true", "--new_repo_id=tester/kf", "--episodes=0", env=hub_env)
    assert proc.returncode == 0, proc.stderr
    import pyarrow.parquet as pq

    files = [f for f in HfApi().list_repo_files("tester/kf", repo_type="dataset") if f.endswith(".parquet")]
    names = pq.read_schema(hf_hub_download("tester/kf", files[0], repo_type="dataset")).names
    assert "root" not in names and "episode_index" in names
    assert not any(str(sample_root) in str(v) for v in pq.read_table(
        hf_hub_download("tester/kf", files[0], repo_type="dataset")).to_pylist()[0].values())


def test_merge_deletes_the_shard_branches_after_the_push(sample_root: Path, hub_env: dict[str, str],
                                                         tmp_path: Path) -> None:
    from huggingface_hub import HfApi

    from lerobot_keyframes.annotate.run.staging import Staging
    from lerobot_keyframes.hub.merge import push_shard_staging
    from lerobot_keyframes.hub.push import push_dataset

    push_dataset(sample_root, "tester/src", private=True)
    for branch, episode in (("shard-a", 0), ("shard-b", 1)):
        staging = Staging(tmp_path / branch)
        staging.write(episode, "plan", "k", [
            {"role": "assistant", "content": "grasp the cube", "style": "subtask", "timestamp": 0.0}])
        push_shard_staging(staging.dir, "tester/final", branch=branch, episodes=[episode])
    refs = HfApi().list_repo_refs("tester/final", repo_type="dataset")
    assert {b.name for b in refs.branches} == {"main", "shard-a", "shard-b"}
    proc = run("merge", "--repo_id=tester/src", "--new_repo_id=tester/final", "--branches=shard-a,shard-b",
               f"--out={tmp_path / 'merged'}", env=hub_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    refs = HfApi().list_repo_refs("tester/final", repo_type="dataset")
    assert {b.name for b in refs.branches} == {"main"}
    files = HfApi().list_repo_files("tester/final", repo_type="dataset")
    assert "data/chunk-000/file-000.parquet" in files


def test_push_takes_its_root_positionally_as_info_does(sample_copy: Path, hub_env: dict[str, str],
                                                       tmp_path: Path) -> None:
    proc = run("push", str(sample_copy), "--new_repo_id=tester/positional", env=hub_env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "tester/positional" in proc.stdout
    same = run("push", str(sample_copy), f"--root={sample_copy}", "--new_repo_id=tester/positional", env=hub_env)
    assert same.returncode == 0, same.stderr[-2000:]  # both, naming one root: fine
    other = tmp_path / "other"
    assert_user_error(run("push", str(sample_copy), f"--root={other}", "--new_repo_id=tester/x", env=hub_env),
                      f"lerobot-keyframes push: error: two roots to push: ROOT {sample_copy} and --root={other}")
