"""`lerobot-keyframes`: a thin command line over the library. Each command parses flags and calls one function.

One grammar for every command (lerobot-annotate's): `--flag_name=value` with underscores, booleans as `--x`,
`--x=true` or `--x=false`, lists as `a,b` or `[a, b]`, episode lists with ranges (`0-2,5`), `--config_path`
for a YAML/JSON config file. A user mistake prints one line (`lerobot-keyframes <command>: error: ...`) and
exits 2; `-v` adds the traceback. `-q` / `-v` / `-vv` set how much is logged; third-party HTTP loggers stay
at WARNING unless `-vv`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .cli_flags import (
    add_bool_flag,
    add_flag,
    apply_config_file,
    fail,
    normalize_bools,
    parse_bool,
    parse_int_list,
    unknown_flags_error,
)

Command = Callable[[argparse.Namespace], int | None]
logger = logging.getLogger("lerobot_keyframes.cli")


class Parser(argparse.ArgumentParser):
    """argparse with exact flag names (no abbreviations) and errors as one line first, then the usage."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        import difflib
        import re

        found = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if found:
            close = difflib.get_close_matches(found.group(1), re.findall(r"'([^']*)'", found.group(2)), n=1)
            if close:
                message += f"; did you mean {close[0]!r}?"
        fail(self, message)


def _csv(value: str) -> list[str]:
    text = value.strip()
    if text.startswith("["):
        return [str(v) for v in json.loads(text)]
    return [v.strip() for v in text.split(",") if v.strip()]


def _episodes_arg(value: str) -> list[int]:
    """`0,3,5-8` -> [0, 3, 5, 6, 7, 8] (also `[0, 3]`)."""
    return list(parse_int_list(value))


def _add_config_path(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config_path", type=Path, default=argparse.SUPPRESS, metavar="FILE",
                   help="YAML or JSON file of settings, nested like the flags ({vlm: {model_id: ...}}); "
                   "flags on the command line win over it (lerobot-annotate's --config_path)")


# -- sample ------------------------------------------------------------------------------------------
def _add_sample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="write a small procedurally rendered LeRobot v3 dataset")
    p.add_argument("out", type=Path, help="output dataset root (must not exist unless --overwrite)")
    p.add_argument("--episodes", type=int, default=4, metavar="INT", help="number of episodes (default: %(default)s)")
    p.add_argument("--cameras", type=_csv, default=["front", "wrist"], metavar="A,B,...",
                   help="comma-separated camera names (default: front,wrist)")
    p.add_argument("--fps", type=int, default=30, metavar="INT", help="frames per second (default: %(default)s)")
    p.add_argument("--codec", choices=["av1", "h264"], default="av1", help="video codec (default: %(default)s)")
    add_flag(p, "--image_camera", hidden=["--image-camera"], default=None, metavar="NAME",
             help="add a camera stored as images inside the parquet")
    add_flag(p, "--max_video_file_mb", hidden=["--max-video-file-mb"], type=float, default=None, metavar="MB",
             help="roll over to a new mp4 past this size")
    p.add_argument("--seed", type=int, default=0, metavar="INT", help="seed of the rendered scenes (default: %(default)s)")
    p.add_argument("--width", type=int, default=320, metavar="PX", help="frame width (default: %(default)s)")
    p.add_argument("--height", type=int, default=240, metavar="PX", help="frame height (default: %(default)s)")
    add_flag(p, "--episode_seconds", hidden=["--episode-seconds"], type=float, default=6.0, metavar="SECONDS",
             help="length of each episode (default: %(default)s)")
    add_bool_flag(p, "--overwrite", help="replace OUT if it exists (default: false)")
    p.set_defaults(func=_run_sample)


def _run_sample(args: argparse.Namespace) -> int:
    from .testing.sample import make_sample_dataset

    root = make_sample_dataset(
        args.out,
        episodes=args.episodes,
        cameras=args.cameras,
        fps=args.fps,
        codec=args.codec,
        image_camera=args.image_camera,
        max_video_file_mb=args.max_video_file_mb,
        seed=args.seed,
        width=args.width,
        height=args.height,
        episode_seconds=args.episode_seconds,
        overwrite=args.overwrite,
    )
    print(root)
    return 0


# -- info --------------------------------------------------------------------------------------------
def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="print a summary of a LeRobot v3 dataset (local root or Hub repo id)")
    p.add_argument("source", help="dataset root or Hub repo id")
    p.add_argument("--revision", default=None, metavar="REV",
                   help="Hub revision (branch, tag, commit); default: the v3.0 tag, else main")
    add_bool_flag(p, "--json", help="machine-readable output (default: false)")
    p.set_defaults(func=_run_info)


def _run_info(args: argparse.Namespace) -> int:
    from .dataset.summary import format_summary, summarize

    summary = summarize(args.source, revision=args.revision)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


# -- tiny-model --------------------------------------------------------------------------------------
def _add_tiny_model(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tiny-model", help="build a random-weight tiny Qwen-VL model offline (smoke tests only: its text is meaningless)"
    )
    p.add_argument("out", type=Path, help="output model directory")
    p.add_argument("--family", choices=["qwen2_vl", "qwen2_5_vl", "qwen3_vl"], default="qwen2_5_vl",
                   help="model family (default: %(default)s)")
    add_flag(p, "--head_dim", hidden=["--head-dim"], type=int, default=16, metavar="INT",
             help="attention head size; 64 for models vLLM must run (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, metavar="INT", help="seed of the random weights (default: %(default)s)")
    p.set_defaults(func=_run_tiny_model)


def _run_tiny_model(args: argparse.Namespace) -> int:
    from .testing.tiny_qwen import build_tiny_qwen

    print(build_tiny_qwen(args.family, args.out, head_dim=args.head_dim, seed=args.seed))
    return 0


# -- annotate ----------------------------------------------------------------------------------------
def _add_annotate(sub: argparse._SubParsersAction) -> None:
    from .annotate.config import AnnotateConfig
    from .cli_flags import add_dataclass_flags
    from .vlm.config import VlmConfig

    p = sub.add_parser(
        "annotate",
        help="annotate a dataset with a Qwen-VL model and write lerobot's language columns",
        usage="lerobot-keyframes annotate (--root=DIR | --repo_id=USER/NAME) [--out=DIR] [--only_episodes=0-2] "
        "[--push_to_hub=true --new_repo_id=USER/NAME] [--vlm.* --plan.* --interjections.* --vqa.* --motion.* "
        "--executor.* --ray.* --job.*] [--config_path=FILE] (--help lists every flag)",
        description="Annotate a LeRobot v3 dataset (subtasks, plans, memory, task rephrasings, interjections "
        "with speech, VQA) and write language_persistent / language_events to a new root (or --in_place). "
        "Re-runs resume from staging; --force recomputes. Takes lerobot-annotate's command lines unchanged "
        "(README: 'lerobot-annotate flags'); --job.target=<flavor> runs the same command on HF Jobs.",
    )
    _add_config_path(p)
    add_dataclass_flags(p, "", AnnotateConfig)
    add_dataclass_flags(p, "vlm", VlmConfig)
    from .hub.jobs import add_job_flags

    add_job_flags(p)  # --job.target=<flavor> submits this same run to Hugging Face Jobs instead of running here
    p.add_argument("--shards", type=int, default=None, metavar="N",
                   help="with --job.*: split into N frame-balanced shard jobs")
    add_bool_flag(p, "--resume", help="reuse staged results (always on; see --force)")
    p.set_defaults(func=_run_annotate)


def annotate_configs_from_args(args: argparse.Namespace):
    """(AnnotateConfig, VlmConfig) from parsed `annotate` flags."""
    import dataclasses

    from .annotate.config import AnnotateConfig
    from .cli_flags import dataclass_from_flags
    from .vlm.config import VlmConfig

    vlm = dataclass_from_flags(args, "vlm", VlmConfig)
    vlm = _lerobot_serving(args, vlm)
    if vlm.serve_port is not None and not hasattr(args, "vlm.api_base"):  # lerobot: the server's port
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(vlm.api_bases[0])
        vlm = dataclasses.replace(vlm, api_base=urlunsplit(
            parts._replace(netloc=f"{parts.hostname}:{vlm.serve_port}")))
    return dataclass_from_flags(args, "", AnnotateConfig), vlm


def _lerobot_serving(args: argparse.Namespace, vlm):
    """lerobot-annotate's --vlm.serve_command and --vlm.num_gpus as our fields (flags given here win)."""
    import dataclasses

    from .vlm.config import serve_command_settings

    changes: dict = {}
    if vlm.serve_command:
        model, fields, extra = serve_command_settings(vlm.serve_command)
        changes = {k: v for k, v in fields.items() if not hasattr(args, f"vlm.{k}")}
        if extra and not hasattr(args, "vlm.serve_args"):
            changes["serve_args"] = (*vlm.serve_args, *extra)
        if model and model != vlm.model_id:
            warn_once(f"--vlm.serve_command serves {model}, --vlm.model_id is {vlm.model_id}: the run uses "
                      "--vlm.model_id")
        logger.debug("--vlm.serve_command as settings: %s", changes)
    if (vlm.num_gpus > 0 and vlm.parallel_servers == 1  # parallel servers: num_gpus is the GPUs they share
            and "tensor_parallel_size" not in changes and not hasattr(args, "vlm.tensor_parallel_size")):
        changes["tensor_parallel_size"] = vlm.num_gpus
    return dataclasses.replace(vlm, **changes) if changes else vlm


_WARNED: set[str] = set()


def warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        logger.warning("%s", message)


def preflight(config, vlm) -> None:
    """Checks that need no decode and no model call: extras installed, model reachable, server answering."""
    import importlib.util

    from .vlm.errors import MissingExtraError

    check_source(config, vlm.camera_key)
    module = {"transformers": "transformers", "vllm": "vllm", "openai": "openai"}[vlm.backend]
    if importlib.util.find_spec(module) is None:
        raise MissingExtraError(vlm.backend, module)
    if config.executor.engine == "ray" and importlib.util.find_spec("ray") is None:
        raise ImportError("--executor.engine=ray needs Ray: pip install 'lerobot_keyframes[ray]'")
    if not config.asks_model:
        return  # motion only: no model is asked anything
    if vlm.backend == "openai" and not vlm.auto_serve:
        probe_openai_server(vlm)
    else:  # loaded here, or by the vLLM server auto_serve starts
        check_model(vlm.model_id, vlm.revision)


def check_source(config, camera_key: str | None) -> None:
    """The source exists and is a LeRobot v3 dataset, and `--vlm.camera_key` names one of its cameras."""
    from .dataset.layout import DatasetLayout
    from .dataset.source import resolve_source

    source = resolve_source(config.root or config.repo_id, revision=config.revision)
    cameras = DatasetLayout.open(source.root).camera_keys
    if camera_key and camera_key not in cameras:
        full = [c for c in cameras if c.rsplit(".", 1)[-1] == camera_key]
        hint = f"; did you mean --vlm.camera_key={full[0]}?" if len(full) == 1 else ""
        raise ValueError(f"--vlm.camera_key={camera_key} is not a camera of the dataset{hint} "
                         f"(cameras: {', '.join(cameras)})")


def check_model(model_id: str, revision: str | None = None) -> None:
    """A model directory with a config.json, a cached Hub model, or a Hub model that exists (one request)."""
    path = Path(model_id).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ValueError(f"--vlm.model_id={model_id}: {path} has no config.json; not a model directory")
        return
    if model_id.startswith(("/", ".", "~")) or model_id.count("/") != 1:
        raise ValueError(f"--vlm.model_id={model_id}: no such directory, and not a Hub model id of the form 'org/name'")
    import huggingface_hub.constants as hf_constants
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(model_id, "config.json", revision=revision), str):
        return
    if hf_constants.HF_HUB_OFFLINE:
        raise ValueError(f"--vlm.model_id={model_id}: not in the Hugging Face cache and HF_HUB_OFFLINE=1; download "
                         f"it first (hf download {model_id}) or pass a local model directory")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        HfApi().model_info(model_id, revision=revision)
    except GatedRepoError:
        raise ValueError(f"--vlm.model_id={model_id}: the model is gated; accept its terms on the Hub and log in "
                         "(hf auth login)") from None
    except RepositoryNotFoundError:
        raise ValueError(f"--vlm.model_id={model_id}: no such model on the Hub (or it is private: hf auth login)") \
            from None
    except RevisionNotFoundError:
        raise ValueError(f"--vlm.model_id={model_id}: the model has no revision {revision!r} (--vlm.revision)") \
            from None


def probe_openai_server(vlm, timeout: float = 5.0) -> None:
    """One quick `GET <api_base>/models` per server: a server that does not answer is an error before any work."""
    import urllib.error
    import urllib.request

    key = vlm.api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
    for base in vlm.api_bases:
        request = urllib.request.Request(base + "/models", headers={"Authorization": f"Bearer {key}"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (the user's URL)
                body = response.read()
        except urllib.error.HTTPError:
            continue  # it answers (401/404 from a proxy without /models is still a server)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ConnectionError(
                f"--vlm.api_base={base}: no OpenAI-compatible server answers ({reason}); start one (e.g. vllm "
                f"serve {vlm.model_id} --port {base.rsplit(':', 1)[-1].split('/')[0]}) or pass "
                "--vlm.auto_serve=true to start it here") from None
        try:
            served = [m.get("id") for m in json.loads(body).get("data", [])]
        except (ValueError, AttributeError):
            continue
        if served and vlm.model_id not in served:
            warn_once(f"--vlm.model_id={vlm.model_id} is not among the models {base} serves {served}")


def _run_annotate(args: argparse.Namespace) -> int:
    import dataclasses

    from .annotate.config import unapplied_settings
    from .hub.jobs import (
        job_config_from_args,
        strip_job_flags,
        submit_annotation_job,
        submit_sharded_annotation,
    )
    from .vlm.config import unapplied_vlm_settings

    config, vlm = annotate_configs_from_args(args)
    if getattr(args, "config_path", None) is not None and (getattr(args, "job.flavor", "local") != "local"
                                                             or args.shards):
        raise ValueError("--config_path cannot be used with a remote --job.target: the job cannot read files of "
                         "this machine; pass the settings as flags instead")
    for message in (*unapplied_settings(config), *unapplied_vlm_settings(vlm)):
        warn_once(message)
    job = job_config_from_args(args)
    if job is not None or args.shards:
        from .hub.jobs import JobConfig

        job = dataclasses.replace(job or JobConfig(), shards=args.shards or (job.shards if job else 1))
        annotate_argv = strip_job_flags(args.argv[args.argv.index("annotate") + 1 :])
        if job.shards > 1:
            submit_sharded_annotation(job, annotate_argv, run_file="lerobot-keyframes-run-{run_id}.json")
        else:
            submit_annotation_job(job, annotate_argv)
        return 0
    preflight(config, vlm)
    from .annotate.pipeline import run_annotation

    result = run_annotation(config, vlm)
    print(result.summary())
    valid = getattr(result.validation, "ok", True)
    return 0 if valid and not result.failures else 1


# -- merge -------------------------------------------------------------------------------------------
def _add_merge(sub: argparse._SubParsersAction) -> None:
    from .annotate.merge import MergeConfig
    from .cli_flags import add_dataclass_flags

    p = sub.add_parser(
        "merge",
        help="merge the shards of a sharded Jobs run into one annotated dataset and push it once",
        description="Collect the staging every shard job pushed to its branch (checked: no overlaps, nothing "
        "missing), write the annotated dataset with the same validator and writer as a single run, and push it "
        "to --new_repo_id in one commit. Takes the run record of `annotate --job.* --shards N` (--run_file).",
    )
    add_dataclass_flags(p, "", MergeConfig, help=MERGE_HELP)
    p.set_defaults(func=_run_merge)


MERGE_HELP = {
    "out": "where the merged dataset is written (its shard downloads go next to it, in <out>.shards)",
    "push_to_hub": "push the merged dataset to --new_repo_id in one commit (then the shard branches are deleted)",
    "private": "unset: private unless the source is known public",
    "require_complete": "refuse to merge while a shard is missing or unfinished",
    "skip_validation": "write despite validation errors, except structural ones",
}


def _run_merge(args: argparse.Namespace) -> int:
    from .annotate.merge import MergeConfig, run_merge
    from .cli_flags import dataclass_from_flags

    outcome = run_merge(dataclass_from_flags(args, "", MergeConfig))
    report = outcome["validation"]
    print(f"merged {len(outcome['episodes'])} episodes into {outcome['out']}: {report.summary()}")
    if "push" in outcome:
        print(outcome["push"].summary())
    return 0 if report.ok else 1


# -- demo --------------------------------------------------------------------------------------------
def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job offline on the embedded sample dataset")
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="where the demo writes its results")
    p.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.out)


# -- validate ----------------------------------------------------------------------------------------
def _add_validate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check the language columns of an annotated dataset (non-zero exit on errors)")
    p.add_argument("root", type=Path, help="dataset root")
    add_bool_flag(p, "--json", help="machine-readable report (default: false)")
    add_flag(p, "--episodes", "--only_episodes", type=_episodes_arg, default=None, metavar="INT,...",
             help="only these episodes, e.g. 0,3,5-8")
    add_bool_flag(p, "--single_camera_vqa", hidden=["--single-camera-vqa"],
                  help="error (not warning) on VQA from several cameras on one frame (released lerobot 0.6.0/0.6.1)")
    add_bool_flag(p, "--require_subtasks", default=True,
                  help="error on an annotated episode without subtasks (default: true)")
    for old in ("--no-require-subtasks", "--no_require_subtasks"):
        p.add_argument(old, dest="require_subtasks", action="store_const", const=False, help=argparse.SUPPRESS)
    add_bool_flag(p, "--vqa_on_image_cameras",
                  help="accept VQA on cameras stored as images (lerobot 0.6.1 rejects them; default: false)")
    p.add_argument("--limit", type=int, default=50, metavar="INT", help="issues to print, 0: all (default: 50)")
    p.set_defaults(func=_run_validate)


def _run_validate(args: argparse.Namespace) -> int:
    from .language.validator import ValidatorConfig, validate_dataset

    config = ValidatorConfig(single_camera_vqa_per_frame=args.single_camera_vqa,
                             require_subtasks=args.require_subtasks, vqa_on_image_cameras=args.vqa_on_image_cameras)
    report = validate_dataset(args.root, config=config, episodes=args.episodes)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format(limit=args.limit or None))
    return 0 if report.ok else 1


# -- push --------------------------------------------------------------------------------------------
def _add_push(sub: argparse._SubParsersAction) -> None:
    from .cli_flags import add_dataclass_flags
    from .hub.push import PushConfig

    p = sub.add_parser(
        "push",
        help="push a dataset root to the Hub (first push uploads it, later pushes only what changed)",
        description="Push a LeRobot v3 dataset root to --new_repo_id: the first push uploads the folder (staging "
        "and caches skipped), later pushes upload only changed files in one commit; the v3.0 tag moves to the new "
        "commit and README.md gets the dataset card with the annotation provenance. New repos are private unless "
        "--private=false and the source is public (the source: --repo_id, else the one recorded in the root's "
        "meta/annotation_provenance.json; a root with no known source is public only with --private=false). "
        "Pushing to the source needs --allow_source_overwrite=true. Re-run an interrupted push to complete it.",
    )
    add_dataclass_flags(p, "", PushConfig, help=PUSH_HELP)
    p.set_defaults(func=_run_push)


PUSH_HELP = {
    "root": "the dataset root to push (required)",
    "allow_source_overwrite": "let --new_repo_id be the source repo (--repo_id) itself",
    "commit_message": "commit message (unset: a generated one)",
}


def _run_push(args: argparse.Namespace) -> int:
    from .cli_flags import dataclass_from_flags
    from .hub.push import PushConfig, run_push

    result = run_push(dataclass_from_flags(args, "", PushConfig))
    print(result.summary())
    return 0


# -- job ---------------------------------------------------------------------------------------------
def _add_job(sub: argparse._SubParsersAction) -> None:
    from .cli_flags import add_dataclass_flags
    from .hub.jobs import JobConfig

    p = sub.add_parser(
        "job",
        help="run `annotate` on Hugging Face Jobs (vLLM image); --shards N splits the episodes by frames",
        usage="lerobot-keyframes job [--job.* flags] [--shards N] -- <annotate flags>",
        description="Submit `lerobot-keyframes annotate <annotate flags>` to Hugging Face Jobs in the vLLM image "
        "(HF_TOKEN goes as a secret; a timeout is always set). The annotate flags must include --repo_id=<Hub "
        "dataset> and --push_to_hub=true. Prints the job URL and follows its logs unless --job.detach=true. With "
        "--shards N, N jobs each annotate a frame-balanced share of the episodes and push their staging to their "
        "own branch; --resubmit_failed RUN_FILE submits again only the shards that did not finish.",
    )
    add_dataclass_flags(p, "job", JobConfig)
    p.add_argument("--shards", type=int, default=None, metavar="N",
                   help="split into N frame-balanced shard jobs (= --job.shards)")
    p.add_argument("--run_file", type=Path, default=Path("lerobot-keyframes-run-{run_id}.json"),
                   help="where a sharded run is recorded (default: %(default)s)")
    p.add_argument("--resubmit_failed", type=Path, default=None, metavar="RUN_FILE",
                   help="resubmit the unfinished shards of a recorded sharded run")
    p.add_argument("annotate_args", nargs=argparse.REMAINDER, help="after --: the flags of `annotate`")
    p.set_defaults(func=_run_job)


def _run_job(args: argparse.Namespace) -> int:
    import dataclasses

    from .cli_flags import dataclass_from_flags
    from .hub.jobs import (
        JobConfig,
        ShardedRun,
        resubmit_failed_shards,
        submit_annotation_job,
        submit_sharded_annotation,
    )

    annotate_args = [a for a in args.annotate_args if a != "--"]
    if args.resubmit_failed is None:  # the annotate flags are checked here, not after the job has started
        annotate_configs_from_args(parse(["annotate", *annotate_args], args.verbose)[0])
    config = dataclass_from_flags(args, "job", JobConfig)
    if args.shards is not None:
        config = dataclasses.replace(config, shards=args.shards)
    if args.resubmit_failed is not None:
        run = ShardedRun.load(args.resubmit_failed)
        resubmit_failed_shards(run, run_file=args.resubmit_failed)
    elif config.shards > 1:
        submit_sharded_annotation(config, annotate_args, run_file=args.run_file)
    else:
        handle = submit_annotation_job(config, annotate_args)
        if handle.stage in ("ERROR", "CANCELED"):
            return 1
    return 0


# -- keyframes ---------------------------------------------------------------------------------------
def _add_keyframes(sub: argparse._SubParsersAction) -> None:
    from .cli_flags import add_dataclass_flags
    from .transform import KeyframesConfig

    p = sub.add_parser(
        "keyframes",
        help="decode exact keyframes per camera into a datasets table (Image lists, times, Qwen-VL messages)",
        description="Map KeyframeTransform over the episodes of SOURCE (dataset root or Hub repo id) with "
        "datasets.map and write the result to --out (parquet shards under data/, or --format=arrow for "
        "save_to_disk). --policy: uniform:N | fps:HZ | at:T1,T2 | every_frame | motion[:key=value,...], joined "
        "with '+', capped with '@N'. --cameras: all or a comma-separated list of camera keys. A second run "
        "with the same settings loads the datasets cache. --push_to_hub REPO pushes it (private unless "
        "--private=false).",
    )
    p.add_argument("source", help="dataset root or Hub repo id")
    add_dataclass_flags(p, "", KeyframesConfig, skip=("source",))
    p.add_argument("--new_repo_id", default=None, metavar="USER/NAME",
                   help="with --push_to_hub=true: the Hub dataset to push to (annotate's grammar)")
    p.set_defaults(func=_run_keyframes)


def _run_keyframes(args: argparse.Namespace) -> int:
    from .cli_flags import dataclass_from_flags
    from .transform import KeyframesConfig, extract_keyframes

    cameras = getattr(args, "cameras", None)
    if cameras is not None and [c.lower() for c in cameras] in (["all"], []):
        cameras = None
    extra = {}
    push = getattr(args, "push_to_hub", None)
    if push is not None and push.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        if parse_bool(push) and not args.new_repo_id:
            raise ValueError("--push_to_hub=true needs --new_repo_id=<user/name>")
        extra["push_to_hub"] = args.new_repo_id if parse_bool(push) else None
    elif push is None and args.new_repo_id:
        raise ValueError("--new_repo_id needs --push_to_hub=true")
    config = dataclass_from_flags(args, "", KeyframesConfig, source=args.source, cameras=cameras, **extra)
    result = extract_keyframes(config)
    where = config.out or "(not written: pass --out)"
    print(f"{len(result)} episodes, columns {', '.join(result.column_names[-3:])} ... -> {where}")
    return 0


# -- review ------------------------------------------------------------------------------------------
def _add_review(sub: argparse._SubParsersAction) -> None:
    from .review.cli import add_parser

    add_parser(sub)  # `review` and `review-apply`


COMMANDS: Sequence[Callable[[argparse._SubParsersAction], None]] = (
    _add_sample,
    _add_info,
    _add_tiny_model,
    _add_annotate,
    _add_demo,
    _add_validate,
    _add_push,
    _add_job,
    _add_merge,
    _add_keyframes,
    _add_review,
)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = Parser(
        prog="lerobot-keyframes",
        description="Exact keyframes and grounded language for LeRobot v3 datasets.",
    )
    parser.add_argument("--version", action="version", version=f"lerobot_keyframes {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more logging, tracebacks on errors (-vv: debug, HTTP requests too); also after COMMAND")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only, no progress display")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    from .evaluate.cli import add_parser as add_eval

    add_eval(sub)
    return parser


QUIET_LOGGERS = ("httpx", "httpcore", "huggingface_hub", "urllib3", "filelock", "fsspec", "datasets", "transformers",
                 "PIL", "asyncio", "openai", "vllm", "ray", "torchcodec", "matplotlib", "xgrammar")


def setup_logging(verbosity: int) -> None:
    """-q: warnings; default: this package at INFO, third parties at WARNING; -v: DEBUG here; -vv: DEBUG all.

    Off a terminal (a log file), progress bars are off (they would leave carriage returns and `[A`
    escapes); huggingface_hub and datasets bars follow the same rule."""
    own = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    others = logging.DEBUG if verbosity >= 2 else logging.WARNING
    logging.basicConfig(level=others, format="%(levelname)s %(name)s: %(message)s", force=True)
    logging.getLogger("lerobot_keyframes").setLevel(own)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(others)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "debug" if verbosity >= 2 else "error")
    if verbosity < 0 or not sys.stderr.isatty():
        from .progress import MODE_ENV

        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TQDM_DISABLE", "1")
        os.environ.setdefault(MODE_ENV, "off" if verbosity < 0 else "log")
    try:
        import huggingface_hub.utils as hf_utils

        if os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS") == "1":
            hf_utils.disable_progress_bars()
    except ImportError:  # pragma: no cover
        pass


def _verbosity(argv: list[str]) -> tuple[int, list[str]]:
    """Take -q/-v/-vv/--quiet/--verbose from anywhere before `--` (they belong to every command)."""
    level, rest = 0, []
    for i, arg in enumerate(argv):
        if arg == "--":
            rest.extend(argv[i:])
            break
        if arg in ("-q", "--quiet"):
            level = -1
        elif arg == "--verbose" or (arg.startswith("-v") and set(arg[1:]) == {"v"}):
            level = max(level, 0) + (1 if arg == "--verbose" else len(arg) - 1)
        else:
            rest.append(arg)
    return level, rest


def _command_index(argv: Sequence[str], choices: Sequence[str]) -> int | None:
    for i, arg in enumerate(argv):
        if arg in choices:
            return i
        if not arg.startswith("-"):
            return None
    return None


def _config_path(argv: Sequence[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg.startswith("--config_path="):
            return arg.split("=", 1)[1]
        if arg == "--config_path" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the input or the environment is wrong (one line, exit 2), not a bug here."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    from .dataset.errors import DatasetFormatError
    from .frames.errors import FrameDecodeError
    from .hub.errors import HubError
    from .vlm.errors import VlmError

    found: list[type[BaseException]] = [ValueError, OSError, ImportError, HubError, DatasetFormatError, VlmError,
                                        FrameDecodeError, HfHubHTTPError, OfflineModeIsEnabled]
    try:
        from .annotate.context import AnnotationError

        found.append(AnnotationError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(found)


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 600 else text[:597] + "..."


def parse(argv: Sequence[str], verbosity: int = 0) -> tuple[argparse.Namespace, argparse.ArgumentParser]:
    """Parsed arguments (booleans normalized, `--config_path` applied) and the parser of the command.

    A mistake exits 2 with one line (and the usage of the command)."""
    parser = build_parser()
    argv = list(argv)
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    at = _command_index(argv, list(commands))
    command_parser = commands[argv[at]] if at is not None else parser
    try:
        if at is not None:
            argv = argv[: at + 1] + normalize_bools(command_parser, argv[at + 1 :])
            path = _config_path(argv[at + 1 :])
            if path is not None:
                apply_config_file(command_parser, path)
        args, extras = parser.parse_known_args(argv)
    except user_error_types() as exc:
        if verbosity > 0:
            logger.exception("reading the arguments")
        fail(command_parser, one_line(exc))
    if extras:
        unknown_flags_error(command_parser, extras)
    args.argv = argv
    args.verbose = verbosity
    return args, command_parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbosity, argv = _verbosity(argv)
    setup_logging(verbosity)
    args, command_parser = parse(argv, verbosity)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except user_error_types() as exc:
        if verbosity > 0:
            import traceback

            traceback.print_exc()
        print(f"{command_parser.prog}: error: {one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
