"""Which `lerobot_keyframes` a `run_job` job installs: the code running here when the job can reach it."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .config import DEFAULT_PACKAGE, JobConfig


def job_package() -> tuple[str, str | None]:
    """(the requirement a job installs to run the code running here, a warning when it cannot be this code).

    Installed from git (PEP 610 `direct_url.json` with `vcs_info`): that URL at that commit. Installed in
    site-packages otherwise: this version from PyPI. Running from a source tree (editable install,
    checkout on `sys.path`): the same version from PyPI, with a warning, since a job cannot reach this
    machine's files."""
    return package_requirement(_direct_url(), Path(__file__).resolve().parents[3])


def package_requirement(direct: Mapping[str, Any] | None, location: Path) -> tuple[str, str | None]:
    """`job_package` for a given PEP 610 record and package folder.

    Args:
        direct (`Mapping`, *optional*):
            The distribution's `direct_url.json` (None when it has none).
        location (`Path`):
            The folder of the `lerobot_keyframes` package that runs here.
    """
    pin = DEFAULT_PACKAGE
    url = str((direct or {}).get("url", ""))
    if direct and not url.startswith("file:"):
        vcs = direct.get("vcs_info") or {}
        if vcs.get("vcs") == "git" and vcs.get("commit_id"):
            return f"lerobot_keyframes @ git+{url}@{vcs['commit_id']}", None
        if "archive_info" in direct:
            return f"lerobot_keyframes @ {url}", None
    if {"site-packages", "dist-packages"} & set(location.parts) and not url.startswith("file:"):
        return pin, None
    return pin, (
        f"lerobot_keyframes runs from {url or location} on this machine, which the job cannot install: it "
        f"installs {pin} from PyPI instead. To run this exact code, push it and pass "
        "--job.package='lerobot_keyframes @ git+https://<host>/<repo>@<commit>'."
    )


def with_package(config: JobConfig, print_fn: Callable[[str], None] = print) -> JobConfig:
    """`config` with `package` resolved (`job_package()` when unset), saying once why it may differ from
    the code running here."""
    if config.package:
        return config
    package, warning = job_package()
    if warning:
        print_fn(f"warning: {warning}")
    return dataclasses.replace(config, package=package)


def _direct_url() -> dict[str, Any] | None:
    """PEP 610 origin of the installed distribution whose files include this module, if recorded."""
    from importlib import metadata

    here = Path(__file__).resolve()
    try:
        dist = metadata.distribution("lerobot_keyframes")
        files = [Path(str(dist.locate_file(f))).resolve() for f in (dist.files or []) if f.name == here.name]
        if here not in files:  # another copy (e.g. a source tree first on sys.path)
            return None
        text = dist.read_text("direct_url.json")
    except (metadata.PackageNotFoundError, OSError):
        return None
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None
