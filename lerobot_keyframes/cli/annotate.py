"""`annotate`: the flags of `AnnotateConfig` and `VlmConfig` (lerobot-annotate's command lines), and the run.

`annotate_configs_from_args` is also how `job` checks an annotate command line before submitting it;
`add_job_flags` / `job_config_from_args` are the `--job.*` flags that send the same run to HF Jobs. The flags of
a module of one's own (`--<name>.*`) exist once `--modules` names it: `add_module_flags` reads `--modules` (or the
`modules` of a `--config_path` file) before the command line is parsed, and adds them (a two-phase parse).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..annotate.config import AnnotateConfig
from ..vlm.config import VlmConfig
from .config_file import add_config_path, config_path_in, load_config_file
from .flags import _converter, add_bool_flag, add_dataclass_flags, dataclass_from_flags
from .logs import logger, warn_once
from .preflight import preflight

if TYPE_CHECKING:
    from ..annotate.executors.jobs import JobConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `annotate`."""
    p = sub.add_parser(
        "annotate",
        help="annotate a dataset with a Qwen-VL model and write lerobot's language columns",
        usage="lerobot-keyframes annotate (--root=DIR | --repo_id=USER/NAME) [--out=DIR] [--only_episodes=0-2] "
        "[--push_to_hub=true --new_repo_id=USER/NAME] [--vlm.* --plan.* --interjections.* --vqa.* --motion.* "
        "--executor.* --ray.* --job.*] [--modules=PKG.MOD:CLASS --<name>.*] [--config_path=FILE] "
        "(--help lists every flag)",
        description="Annotate a LeRobot v3 dataset (subtasks, plans, memory, task rephrasings, interjections "
        "with speech, VQA) and write language_persistent / language_events to a new root (or --in_place). "
        "Re-runs resume from staging; --force recomputes. Takes lerobot-annotate's command lines unchanged "
        "(README: 'lerobot-annotate flags'); --job.target=<flavor> runs the same command on HF Jobs.",
    )
    add_config_path(p)
    add_dataclass_flags(p, "", AnnotateConfig, skip=("module_configs",))  # those come from --<name>.* flags
    add_dataclass_flags(p, "vlm", VlmConfig)
    add_job_flags(p)  # --job.target=<flavor> submits this same run to Hugging Face Jobs instead of running here
    p.add_argument("--shards", type=int, default=None, metavar="N",
                   help="with --job.*: split into N frame-balanced shard jobs")
    add_bool_flag(p, "--resume", help="reuse staged results (always on; see --force)")
    p.set_defaults(func=_run_annotate, extend_parser=add_module_flags)


def module_specs_in(argv: Sequence[str]) -> tuple[str, ...]:
    """The modules a command line names: its last `--modules`, else the `modules` of its `--config_path` file."""
    probe = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    probe.add_argument("--modules", type=_converter(tuple[str, ...]), default=None)
    given, _ = probe.parse_known_args(list(argv))
    if given.modules is not None:
        return tuple(given.modules)
    path = config_path_in(argv)
    found: Any = load_config_file(path).get("modules") if path is not None else None
    return tuple(_converter(tuple[str, ...])(found)) if found else ()


def add_module_flags(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """`--<name>.*` for each module of one's own that `--modules` names (its config dataclass's fields)."""
    specs = module_specs_in(argv)
    if not specs:
        return
    from ..annotate.modules import BUILT_IN, load_modules

    for module in load_modules(specs):
        if type(module) not in BUILT_IN:
            add_dataclass_flags(parser, module.name, module.config_class)


def add_job_flags(parser: argparse.ArgumentParser) -> None:
    """Add the `--job.*` flags (one per `annotate.executors.jobs.JobConfig` field) to an argparse parser."""
    from ..annotate.executors.jobs import JobConfig

    add_dataclass_flags(parser, "job", JobConfig)


def job_config_from_args(args: argparse.Namespace) -> JobConfig | None:
    """The JobConfig of parsed `--job.*` flags, or None when no `--job.*` flag was given (run locally).

    Args:
        args (`argparse.Namespace`):
            Parsed flags of a parser that `add_job_flags` extended.
    """
    from ..annotate.executors.jobs import JobConfig

    if not any(hasattr(args, f"job.{f.name}") for f in dataclasses.fields(JobConfig)):
        return None
    if getattr(args, "job.flavor", None) in (None, "local"):  # lerobot-annotate: no --job.target runs here
        given = sorted(f"--job.{f.name}" for f in dataclasses.fields(JobConfig)
                       if hasattr(args, f"job.{f.name}") and f.name != "flavor")
        if given:
            logger.warning("%s: no effect without --job.target=<flavor> (or --job.flavor): running here",
                           ", ".join(given))
        return None
    return dataclass_from_flags(args, "job", JobConfig)


def annotate_configs_from_args(args: argparse.Namespace) -> tuple[AnnotateConfig, VlmConfig]:
    """(AnnotateConfig, VlmConfig) from parsed `annotate` flags (a module of one's own: from its `--<name>.*`)."""
    vlm = dataclass_from_flags(args, "vlm", VlmConfig)
    vlm = _lerobot_serving(args, vlm)
    if vlm.serve_port is not None and not hasattr(args, "vlm.api_base"):  # lerobot: the server's port
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(vlm.api_bases[0])
        vlm = dataclasses.replace(vlm, api_base=urlunsplit(
            parts._replace(netloc=f"{parts.hostname}:{vlm.serve_port}")))
    config = dataclass_from_flags(args, "", AnnotateConfig)
    if config.modules:
        from ..annotate.modules import BUILT_IN, load_modules

        given = {m.name: dataclass_from_flags(args, m.name, m.config_class) for m in load_modules(config.modules)
                 if type(m) not in BUILT_IN and any(k.startswith(f"{m.name}.") for k in vars(args))}
        config = dataclasses.replace(config, module_configs=given)
    return config, vlm


def _lerobot_serving(args: argparse.Namespace, vlm: VlmConfig) -> VlmConfig:
    """lerobot-annotate's --vlm.serve_command and --vlm.num_gpus as our fields (flags given here win)."""
    from ..vlm.config import serve_command_settings

    changes: dict = {}
    if vlm.serve_command:
        model, fields, extra = serve_command_settings(vlm.serve_command)
        changes = {k: v for k, v in fields.items() if not hasattr(args, f"vlm.{k}")}
        if extra and not hasattr(args, "vlm.serve_args"):
            changes["serve_args"] = (*vlm.serve_args, *extra)
        if model and model != vlm.model_id:
            warn_once(f"--vlm.serve_command serves {model} but --vlm.model_id is {vlm.model_id}: requests name "
                      "--vlm.model_id, which that server will not know; give both the same model")
        logger.debug("--vlm.serve_command as settings: %s", changes)
    if (vlm.num_gpus > 0 and vlm.parallel_servers == 1  # parallel servers: num_gpus is the GPUs they share
            and "tensor_parallel_size" not in changes and not hasattr(args, "vlm.tensor_parallel_size")):
        changes["tensor_parallel_size"] = vlm.num_gpus
    return dataclasses.replace(vlm, **changes) if changes else vlm


def _run_annotate(args: argparse.Namespace) -> int:
    from ..annotate.config import unapplied_settings
    from ..annotate.executors.jobs import strip_job_flags, submit_annotation_job, submit_sharded_annotation
    from ..vlm.config import unapplied_vlm_settings

    config, vlm = annotate_configs_from_args(args)
    if getattr(args, "config_path", None) is not None and (getattr(args, "job.flavor", "local") != "local"
                                                             or args.shards):
        raise ValueError("--config_path cannot be used with a remote --job.target: the job cannot read files of "
                         "this machine; pass the settings as flags instead")
    remote = bool(args.shards) or getattr(args, "job.flavor", "local") not in (None, "local")
    for message in (*unapplied_settings(config), *unapplied_vlm_settings(vlm, local=not remote)):
        warn_once(message)
    job = job_config_from_args(args)
    if job is not None or args.shards:
        from ..annotate.executors.jobs import JobConfig

        job = dataclasses.replace(job or JobConfig(), shards=args.shards or (job.shards if job else 1))
        annotate_argv = strip_job_flags(args.argv[args.argv.index("annotate") + 1 :])
        if job.shards > 1:
            submit_sharded_annotation(job, annotate_argv, run_file="lerobot-keyframes-run-{run_id}.json")
        else:
            submit_annotation_job(job, annotate_argv)
        return 0
    preflight(config, vlm)
    from ..annotate import run_annotation

    result = run_annotation(config, vlm)
    print(result.summary())
    valid = getattr(result.validation, "ok", True)
    return 0 if valid and not result.failures else 1
