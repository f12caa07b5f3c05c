"""lerobot-annotate 0.6.1 command lines run unchanged; one flag grammar for every command; help on every flag.

`LEROBOT_ANNOTATE_061` is every flag of lerobot 0.6.1's `AnnotationPipelineConfig` (draccus) with its
default, read from the installed lerobot 0.6.1; tests/conformance/test_cli_lerobot.py checks the list
against lerobot itself in the lerobot tier.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from lerobot_keyframes.cli import annotate_configs_from_args, build_parser, parse

LEROBOT_ANNOTATE_061: dict[str, object] = {
    "repo_id": None, "new_repo_id": None, "root": None, "staging_dir": None, "seed": 1729,
    "plan.enabled": True, "plan.n_task_rephrasings": 10, "plan.derive_task_from_video": "if_short",
    "plan.derive_task_min_words": 3, "plan.frames_per_second": 2.0, "plan.max_frames_per_prompt": 60,
    "plan.contact_sheet_columns": 5, "plan.contact_sheet_frames_per_sheet": 20, "plan.contact_sheet_frame_width": 224,
    "plan.contact_sheet_quality": 84, "plan.min_subtask_seconds": 1.5, "plan.plan_max_steps": 8,
    "plan.subtask_describe_first": True, "plan.subtask_seeded_relabel": False, "plan.subtask_relabel_frames": 5,
    "plan.emit_plan": True, "plan.emit_memory": True, "plan.task_aug_axes.enabled": False,
    "plan.task_aug_axes.synonym_paraphrase": 3, "plan.task_aug_axes.omit_arm": 3,
    "plan.task_aug_axes.omit_orientation": 2, "plan.task_aug_axes.omit_grasp_method": 2,
    "plan.task_aug_axes.combined_omissions": 2,
    "interjections.enabled": True, "interjections.max_interjections_per_episode": 3,
    "interjections.interjection_min_t": 2.0, "interjections.interjection_window_seconds": 2.0,
    "interjections.interjection_window_frames": 4,
    "vqa.enabled": True, "vqa.vqa_emission_hz": 1.0, "vqa.K": 1,
    "vqa.question_types": ("bbox", "keypoint", "count", "attribute", "spatial"), "vqa.restrict_to_default_camera": False,
    "vlm.backend": "openai", "vlm.model_id": "Qwen/Qwen3.6-27B", "vlm.api_base": "http://localhost:8000/v1",
    "vlm.api_key": "EMPTY", "vlm.auto_serve": True, "vlm.serve_port": 8000, "vlm.serve_command": None,
    "vlm.parallel_servers": 1, "vlm.num_gpus": 0, "vlm.client_concurrency": 16, "vlm.serve_ready_timeout_s": 600.0,
    "vlm.max_new_tokens": 512, "vlm.temperature": 0.2, "vlm.max_model_len": None, "vlm.camera_key": None,
    "vlm.chat_template_kwargs": None, "vlm.reasoning_effort": None,
    "executor.episode_parallelism": 16,
    "job.target": None, "job.image": "vllm/vllm-openai:latest", "job.timeout": "2h", "job.detach": False,
    "job.tags": [], "job.lerobot_ref": "main",
    "skip_validation": False, "only_episodes": None, "video_backend": None, "push_to_hub": False,
    "push_private": False, "push_commit_message": None,
}

# The HF Jobs command of lerobot's docs/source/annotation_pipeline.mdx, as the shell hands it over.
LEROBOT_DOCS_JOB = [
    "--repo_id=user/my_dataset", "--new_repo_id=user/my_dataset_annotated", "--push_to_hub=true",
    "--vlm.model_id=Qwen/Qwen3.6-27B", "--vlm.num_gpus=1",
    "--vlm.serve_command=vllm serve Qwen/Qwen3.6-27B --tensor-parallel-size 1         --max-model-len 32768 "
    "--gpu-memory-utilization 0.8         --uvicorn-log-level warning --port {port}",
    "--vlm.serve_ready_timeout_s=1800", '--vlm.chat_template_kwargs={"enable_thinking": false}', "--job.target=h200",
]


def _value(default: object) -> str:
    if default is None:
        return "null"
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, (list, tuple)):
        return json.dumps(list(default))
    return str(default)


def test_every_lerobot_annotate_flag_parses_with_its_lerobot_default() -> None:
    """Each flag alone, then all at once; the values land on our fields (aliases included)."""
    for flag, default in LEROBOT_ANNOTATE_061.items():
        parse(["annotate", f"--{flag}={_value(default)}"])
    argv = ["annotate", *(f"--{f}={_value(d)}" for f, d in LEROBOT_ANNOTATE_061.items()
                          if f not in ("repo_id", "root", "vlm.chat_template_kwargs") and d is not None)]
    args, _ = parse([*argv, "--root=/data/ds", '--vlm.chat_template_kwargs={"enable_thinking": false}'])
    config, vlm = annotate_configs_from_args(args)
    assert config.plan.n_task_rephrasings == 10 and config.plan.contact_sheet_quality == 84
    assert config.plan.task_aug_axes.omit_arm == 3 and config.vqa.K == 1
    assert config.interjections.interjection_window_seconds == 2.0
    assert config.private is False  # --push_private
    assert vlm.serve_timeout == 600.0 and vlm.backend == "openai" and vlm.auto_serve is True  # serve_ready_timeout_s
    assert vlm.chat_template_kwargs == {"enable_thinking": False} and vlm.temperature == 0.2
    assert vlm.api_base == "http://localhost:8000/v1"  # --vlm.serve_port=8000 next to an explicit api_base
    assert config.executor.episode_parallelism == 16 and config.only_episodes is None


def test_lerobot_docs_job_command_is_understood() -> None:
    args, _ = parse(["annotate", *LEROBOT_DOCS_JOB])
    config, vlm = annotate_configs_from_args(args)
    assert getattr(args, "job.flavor") == "h200"  # --job.target
    assert vlm.serve_timeout == 1800 and vlm.num_gpus == 1 and vlm.serve_command.endswith("--port {port}")
    assert vlm.chat_template_kwargs == {"enable_thinking": False}
    assert config.push_to_hub and config.new_repo_id == "user/my_dataset_annotated"


def test_serve_command_and_num_gpus_become_our_settings() -> None:
    _, vlm = annotate_configs_from_args(parse(["annotate", *LEROBOT_DOCS_JOB])[0])
    assert (vlm.tensor_parallel_size, vlm.max_model_len, vlm.gpu_memory_utilization) == (1, 32768, 0.8)
    assert vlm.serve_args == ("--uvicorn-log-level=warning",)  # --port {port} is auto_serve's own
    argv = ["annotate", "--root=x", "--vlm.num_gpus=4", "--vlm.serve_command=vllm serve m --enforce-eager "
            "--max-num-seqs 8 --quantization fp8 --max-model-len=4096", "--vlm.max_model_len=2048"]
    _, vlm = annotate_configs_from_args(parse(argv)[0])
    assert vlm.tensor_parallel_size == 4 and vlm.enforce_eager and vlm.max_num_seqs == 8
    assert vlm.max_model_len == 2048  # the flag given here wins over the command
    assert vlm.serve_args == ("--quantization=fp8",)


def test_num_gpus_with_parallel_servers_is_the_gpus_they_share() -> None:
    """lerobot-annotate 0.6.1: with --vlm.parallel_servers, server i runs on GPU i % num_gpus (one GPU each)."""
    argv = ["annotate", "--root=x", "--vlm.backend=openai", "--vlm.auto_serve=true", "--vlm.parallel_servers=4",
            "--vlm.num_gpus=2", "--vlm.serve_port=8300"]
    _, vlm = annotate_configs_from_args(parse(argv)[0])
    assert vlm.parallel_servers == 4 and vlm.num_gpus == 2 and vlm.tensor_parallel_size == 1
    from lerobot_keyframes.vlm.config import unapplied_vlm_settings
    from lerobot_keyframes.vlm.serve import ServerPool

    assert unapplied_vlm_settings(vlm) == []
    pool = ServerPool(vlm)
    assert [b.rsplit(":", 1)[1] for b in pool.api_bases] == ["8300/v1", "8301/v1", "8302/v1", "8303/v1"]
    (msg,) = unapplied_vlm_settings(vlm.replace(auto_serve=False))
    assert "--vlm.auto_serve=true only" in msg


def test_serve_port_alone_moves_the_api_base() -> None:
    _, vlm = annotate_configs_from_args(parse(["annotate", "--root=x", "--vlm.serve_port=8123"])[0])
    assert vlm.api_base == "http://127.0.0.1:8123/v1"


def test_job_target_local_runs_here() -> None:
    from lerobot_keyframes.cli.annotate import job_config_from_args

    assert job_config_from_args(parse(["annotate", "--root=x", "--job.target=local"])[0]) is None
    assert job_config_from_args(parse(["annotate", "--root=x", "--job.tags=[\"lelab\"]"])[0]) is None
    job = job_config_from_args(parse(["annotate", "--root=x", "--job.target=h200", '--job.tags=["lelab", "x"]'])[0])
    assert job.flavor == "h200" and job.tags == ("lelab", "x")


def test_config_file_yaml_and_json_flags_win(tmp_path: Path) -> None:
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text(
        "repo_id: user/ds\nonly_episodes: [0, 2]\npush_private: true\n"
        "vlm:\n  model_id: Qwen/Qwen2.5-VL-7B-Instruct\n  temperature: 0.5\n  chat_template_kwargs: {enable_thinking: false}\n"
        "plan:\n  n_task_rephrasings: 7\n  task_aug_axes: {omit_arm: 1}\nvqa:\n  enabled: false\n"
    )
    args, _ = parse(["annotate", f"--config_path={yaml_file}", "--vlm.temperature=0.1"])
    config, vlm = annotate_configs_from_args(args)
    assert (config.repo_id, config.only_episodes, config.private) == ("user/ds", (0, 2), True)
    assert config.plan.n_task_rephrasings == 7 and config.plan.task_aug_axes.omit_arm == 1
    assert config.vqa.enabled is False
    assert vlm.model_id == "Qwen/Qwen2.5-VL-7B-Instruct" and vlm.chat_template_kwargs == {"enable_thinking": False}
    assert vlm.temperature == 0.1  # the command line wins over the file
    json_file = tmp_path / "run.json"
    json_file.write_text(json.dumps({"root": "/data/x", "vlm": {"backend": "openai"}, "seed": 3}))
    config, vlm = annotate_configs_from_args(parse(["annotate", "--config_path", str(json_file)])[0])
    assert str(config.root) == "/data/x" and config.seed == 3 and vlm.backend == "openai"


def test_a_full_lerobot_config_file_loads(tmp_path: Path) -> None:
    """A dump of lerobot-annotate's whole config (every field, nulls included) is a valid --config_path."""
    import yaml

    nested: dict = {}
    for flag, default in LEROBOT_ANNOTATE_061.items():
        *groups, name = flag.split(".")
        node = nested
        for group in groups:
            node = node.setdefault(group, {})
        node[name] = list(default) if isinstance(default, tuple) else default
    nested["root"] = "/data/ds"
    path = tmp_path / "lerobot.yaml"
    path.write_text(yaml.safe_dump(nested))
    config, vlm = annotate_configs_from_args(parse(["annotate", f"--config_path={path}"])[0])
    assert config.video_backend == "auto" and vlm.chat_template_kwargs == {}  # lerobot's nulls: our defaults
    assert config.plan.n_task_rephrasings == 10 and vlm.model_id == "Qwen/Qwen3.6-27B" and vlm.camera_key is None
    assert config.private is False and vlm.serve_timeout == 600.0


@pytest.mark.parametrize(("argv", "expected"), [
    (["--vqa.enabled"], True), (["--vqa.enabled=false"], False), (["--vqa.enabled", "false"], False),
    (["--vqa.enabled=True"], True), (["--vqa.enabled", "--force"], True),
])
def test_bools_bare_or_valued(argv: list[str], expected: bool) -> None:
    config, _ = annotate_configs_from_args(parse(["annotate", "--root=x", *argv])[0])
    assert config.vqa.enabled is expected


def test_episode_ranges_and_lists() -> None:
    for value, expected in (("0-2", (0, 1, 2)), ("0,3,5-6", (0, 3, 5, 6)), ("[1, 4]", (1, 4))):
        config, _ = annotate_configs_from_args(parse(["annotate", "--root=x", f"--only_episodes={value}"])[0])
        assert config.only_episodes == expected
    assert parse(["validate", "root", "--only_episodes=0-2"])[0].episodes == [0, 1, 2]


def test_bare_bool_never_takes_the_positional_argument() -> None:
    args, _ = parse(["sample", "--overwrite", "out_dir"])
    assert args.overwrite is True and str(args.out) == "out_dir"
    args, _ = parse(["keyframes", "--overwrite", "src/ds"])
    assert args.overwrite is True and args.source == "src/ds"
    args, _ = parse(["keyframes", "--overwrite=false", "src/ds"])
    assert args.overwrite is False
    args, _ = parse(["validate", "--single-camera-vqa", "root"])  # a hidden old spelling too
    assert args.single_camera_vqa is True and str(args.root) == "root"
    args, _ = parse(["push", "--private", "--root=r"])  # an optional boolean
    assert args.private is True


def test_old_dashed_spellings_still_work() -> None:
    args, _ = parse(["sample", "out", "--image-camera", "top", "--episode-seconds=2", "--max-video-file-mb", "1"])
    assert (args.image_camera, args.episode_seconds, args.max_video_file_mb) == ("top", 2.0, 1.0)
    assert parse(["tiny-model", "out", "--head-dim", "64"])[0].head_dim == 64
    assert parse(["validate", "root", "--no-require-subtasks"])[0].require_subtasks is False
    assert parse(["validate", "root", "--single-camera-vqa"])[0].single_camera_vqa is True


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return dict(next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices)


def test_every_flag_has_help_and_a_readable_metavar() -> None:
    for name, sub in _subparsers().items():
        for action in sub._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
            metavar = str(action.metavar or "")
            assert "NONETYPE" not in metavar and "<lambda>" not in metavar, (name, action.option_strings, metavar)
            if action.option_strings:
                long = [o for o in action.option_strings if o.startswith("--")]
                assert all("-" not in o[2:] for o in long), f"{name}: {long} is not an underscore flag"


def test_lerobot_names_are_shown_next_to_ours(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(["annotate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    backends = "{auto,torchcodec,pyav,ffmpeg}"
    for pair in ("--private [BOOL], --push_private [BOOL]", f"--video_backend {backends}, --frame_backend {backends}",
                 "--vlm.serve_timeout FLOAT, --vlm.serve_ready_timeout_s FLOAT", "--job.flavor STR, --job.target STR"):
        assert pair in text, pair


def test_readme_table_lists_every_lerobot_flag() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme.split("### lerobot-annotate flags", 1)[1].split("\n## ", 1)[0]
    for flag in LEROBOT_ANNOTATE_061:
        assert f"`--{flag}`" in table, flag
