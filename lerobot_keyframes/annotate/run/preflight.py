"""Checks before the first decode or model call: every location, the Hub target, privacy and extras.

A run that would be refused at the end (output inside the source, `--in_place` on a Hugging Face cache or
through a symlink, a push to the source, a public copy of a private dataset, a backend that is not
installed) is refused here, before staging is created and before the model spends a minute per episode.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ...dataset.errors import DatasetFormatError
from ...dataset.layout import INFO_PATH, check_output_separate, iter_dataset_files
from .plan import PushPlan, RunPlan

if TYPE_CHECKING:
    from ...vlm.config import VlmConfig

logger = logging.getLogger(__name__)

# the modules each backend imports (vlm/errors.py names the extra to install)
BACKEND_MODULES = {"transformers": ("torch", "transformers"), "vllm": ("vllm",), "openai": ("openai",)}


class PreflightError(DatasetFormatError):
    """The run would write where it must not, or cannot run at all: refused before any work."""


def preflight(plan: RunPlan, vlm_config: VlmConfig | None = None) -> None:
    """Refuse a run that cannot finish safely: the plan's paths, its push target, and (given `vlm_config`) the
    backend's extras. The plan itself refused unknown, clashing or broken modules when it was made."""
    config, source = plan.config, plan.source
    if source is None:
        raise ValueError("preflight needs the plan of a resolved source (`prepare_run` makes it)")
    root = Path(source.root)
    # a link out of the root or a link loop: refused before anything is copied (the writer skips these two)
    iter_dataset_files(root, skip=lambda rel: rel in (".git/", ".cache/"))
    if config.in_place:
        _check_in_place(plan)
    elif plan.writes_dataset:
        check_output_separate(root, plan.output_root, what="--out")
        _check_out_writable(plan.output_root)
    if not config.in_place or config.staging_dir:
        check_output_separate(root, plan.staging_dir, what="--staging_dir" if config.staging_dir else "the staging folder")
    if plan.push is not None:
        _check_hub_target(plan.push)
    if plan.engine == "ray" and importlib.util.find_spec("ray") is None:
        raise PreflightError("--executor.engine=ray needs Ray Data, which is not importable. Install it with: "
                             "pip install 'lerobot_keyframes[ray]'")
    if vlm_config is not None and plan.modules.asks_model:
        check_backend_importable(vlm_config)


def _check_out_writable(out: Path) -> None:
    """The writer makes a new root where nothing is, or updates a dataset root there: anything else would be
    refused only once every episode is annotated, so it is refused now."""
    if (out.exists() or out.is_symlink()) and not (out / INFO_PATH).is_file():
        what = "a file" if out.is_file() else "a folder that is not a dataset root (no meta/info.json)"
        raise PreflightError(f"--out {Path(os.path.abspath(out))} already exists and is {what}; annotate writes a new "
                             "dataset root or updates one there. Choose a new --out (or remove that one yourself)")
    above = Path(os.path.abspath(out)).parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        raise PreflightError(f"--out {out}: {above} is a file, so no folder can be made under it; choose another --out")


def _check_in_place(plan: RunPlan) -> None:
    from ...language.writer import check_in_place_safe, is_hf_cache_path

    config, source = plan.config, plan.source
    assert source is not None
    given = Path(config.root).expanduser() if config.root is not None else None
    root = Path(source.root)
    if source.repo_id is not None or is_hf_cache_path(root) or (given is not None and is_hf_cache_path(given.absolute())):
        raise PreflightError(
            f"--in_place on {root}: it is a Hugging Face cache snapshot (its files are shared blobs); writing "
            "there would corrupt the cache. Write to a new root with --out DIR."
        )
    if given is not None and given.is_symlink():
        raise PreflightError(
            f"--in_place on {given}: the root is a symlink (-> {given.resolve()}); in-place writes never go "
            "through symlinks. Pass the real directory, or write to a new root with --out DIR."
        )
    shards = sorted(root.glob("data/**/*.parquet"))
    try:
        check_in_place_safe(root, [*shards, root / INFO_PATH])
    except DatasetFormatError as exc:
        raise PreflightError(f"--in_place: {exc}") from None


def _check_hub_target(push: PushPlan) -> None:
    from ...hub.push import check_push_target

    target = push.repo_id
    if push.mode == "shard_staging":
        return  # shard branches of the target: `merge` applies the target rules once
    from huggingface_hub import HfApi, get_token

    if not get_token():
        raise PreflightError(
            f"--push_to_hub=true to {target}: no Hugging Face token (set HF_TOKEN or run `hf auth login`); "
            "nothing was computed"
        )
    api = HfApi()
    # a pull request overwrites nothing (its owner merges it): the source may be its target
    pull_request = push.mode == "pull_request"
    check_push_target(api, target, source_repo_id=push.source_repo_id, private=None if pull_request else push.private,
                      allow_source_overwrite=push.allow_source_overwrite or pull_request)
    from ...hub.errors import hub_errors

    exists = True
    if pull_request:
        with hub_errors("checking the pull request target", repo_id=target):
            exists = api.repo_exists(target, repo_type="dataset")
    if not exists:
        raise PreflightError(f"--create_pr=true on {target}: the repo does not exist (or this token cannot see it); a "
                             "pull request goes to an existing repo. Use --new_repo_id for a new one.")
    with hub_errors("checking the token", repo_id=target):
        me = api.whoami()
    role = ((me.get("auth") or {}).get("accessToken") or {}).get("role")
    namespaces = {me.get("name")} | {o.get("name") for o in me.get("orgs") or [] if isinstance(o, dict)}
    namespace = target.split("/", 1)[0]
    if role == "read" or (namespace not in namespaces and not pull_request):  # anyone may open a pull request
        why = "it is a read-only token" if role == "read" else f"{me.get('name')!r} is not {namespace!r} nor one of its orgs"
        raise PreflightError(f"--push_to_hub=true to {target}: this token cannot write there ({why}); nothing was computed")


def check_backend_importable(vlm_config: VlmConfig) -> None:
    """The chosen backend's packages are importable (the model is not loaded here)."""
    from ...vlm.errors import MissingExtraError

    backend = getattr(vlm_config, "backend", None)
    modules = list(BACKEND_MODULES.get(backend, ()))
    if (backend == "openai" and getattr(vlm_config, "auto_serve", False) and not getattr(vlm_config, "serve_command", None)
            and importlib.util.find_spec("vllm") is None):  # a --vlm_config.serve_command may start any server
        from ...vlm.serve import served_models

        if served_models(vlm_config.api_bases[0], vlm_config.api_key, timeout=2.0) is None:  # nothing to reuse there
            modules.append("vllm")  # auto_serve starts `python -m vllm.entrypoints.openai.api_server`
    for module in modules:
        if importlib.util.find_spec(module) is None:
            err = MissingExtraError("vllm" if module == "vllm" else backend, module)
            raise PreflightError(str(err)) from None
