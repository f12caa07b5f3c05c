"""The dataset card (README.md): LeRobot metadata plus an "Annotation provenance" section, merged into any
existing card so what the source's authors wrote about their dataset is kept.

Built with `huggingface_hub`'s `DatasetCard`/`DatasetCardData`. The provenance section sits between two
HTML comments and is replaced on every push, so re-pushing never duplicates it. The metadata gets the
LeRobot tags, `task_categories: [robotics]` and a `default` config reading `data/*/*.parquet` (what
`load_dataset(repo_id)` and the dataset viewer use); other metadata and other configs are kept as they are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from huggingface_hub import DatasetCard

PROVENANCE_START = "<!-- lerobot_keyframes:provenance:start -->"
PROVENANCE_END = "<!-- lerobot_keyframes:provenance:end -->"
LEROBOT_TAGS = ("LeRobot", "lerobot-keyframes", "robotics", "language-annotations")
DATA_FILES = "data/*/*.parquet"
DEFAULT_LICENSE = "apache-2.0"  # what lerobot-annotate's card sets; a license the card already has is kept
_LOCAL_PATH = re.compile(r"^(~|/|\.{1,2}/|[A-Za-z]:[\\/])")
_INFO_BLOCK = re.compile(r"(\[meta/info\.json\]\(meta/info\.json\):\s*```json\n)(.*?)(\n```)", re.S)


def _hub_url(repo_id: str) -> str:
    from huggingface_hub import constants

    return f"{constants.ENDPOINT}/datasets/{repo_id}"


def _fmt(value: Any) -> str:
    if value is None or value == "" or value == {} or value == []:
        return "—"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def _validator(value: Any) -> str:
    """A validator result as a short phrase: bool, str, or a dict with ok/errors/warnings/summary."""
    if value is None:
        return "not run"
    if isinstance(value, bool):
        return "passed" if value else "FAILED"
    if isinstance(value, Mapping):
        ok = value.get("ok", value.get("passed"))
        parts = ["passed" if ok else "FAILED"] if ok is not None else []
        for key in ("errors", "warnings"):
            if key in value:
                n = value[key]
                parts.append(f"{len(n) if isinstance(n, (list, tuple)) else n} {key}")
        if value.get("summary"):
            parts.append(str(value["summary"]))
        return _fmt(", ".join(parts) or value)
    summary = getattr(value, "summary", None)
    return _fmt(summary() if callable(summary) else value)


def public(value: Any) -> Any:
    """`value` without machine-local paths: a local path becomes its last part, marked `(local)`."""
    if isinstance(value, Mapping):
        return {k: public(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [public(v) for v in value]
    if isinstance(value, str) and _LOCAL_PATH.match(value):
        name = re.split(r"[\\/]", value.rstrip("/\\"))[-1] or "?"
        return f"{name} (local)"
    return value


def render_provenance(provenance: Mapping[str, Any]) -> str:
    """The markdown section, between the markers. Known keys become table rows; everything is also kept as JSON.

    Machine-local paths (a model loaded from a directory, output roots) appear by their last part only."""
    p = public(dict(provenance))
    model = p.get("model_id")
    if model and p.get("model_revision"):
        model = f"{model} @ {p['model_revision']}"
    job = p.get("job_id")
    if job and p.get("job_url"):
        job = f"[{job}]({p['job_url']})"
    elif not job and p.get("job_run_id"):
        job = f"run {p['job_run_id']}"
    source = p.get("source_repo_id")
    if source:
        source = f"[{source}]({_hub_url(source)})" + (f" @ {p['source_revision']}" if p.get("source_revision") else "")
    prompts = p.get("prompt_hashes")
    if isinstance(prompts, Mapping):
        prompts = ", ".join(f"`{k}` {str(v)[:12]}" for k, v in sorted(prompts.items()))
    episodes = p.get("episodes")
    if isinstance(episodes, (list, tuple)):
        episodes = len(episodes)
    rows = [
        ("Package", f"lerobot_keyframes {p.get('package_version') or '?'}"),
        ("Model", model),
        ("Backend", p.get("backend")),
        ("Sampling", p.get("sampling")),
        ("Prompt hashes", prompts),
        ("Modules run", p.get("modules")),
        ("Episodes annotated", episodes),
        ("Rows per style", dict(sorted(p["rows_per_style"].items())) if isinstance(p.get("rows_per_style"), Mapping) else p.get("rows_per_style")),
        ("Validator", _validator(p.get("validator", p.get("validation")))),
        ("Date", p.get("date")),
        ("Job", job),
        ("Source dataset", source),
    ]
    table = "\n".join(f"| {name} | {_fmt(value) if name not in ('Prompt hashes', 'Validator') else value or '—'} |"
                      for name, value in rows)
    blob = json.dumps(p, indent=2, sort_keys=True, default=str)
    return (
        f"{PROVENANCE_START}\n"
        "## Annotation provenance\n\n"
        "The language columns (`language_persistent`, `language_events`) of this dataset were written by "
        "`lerobot_keyframes`. What produced them:\n\n"
        "| | |\n|---|---|\n"
        f"{table}\n\n"
        "<details><summary>Full provenance (JSON)</summary>\n\n"
        f"```json\n{blob}\n```\n\n"
        "</details>\n"
        f"{PROVENANCE_END}\n"
    )


def _default_body(repo_id: str, info: Mapping[str, Any] | None, source_repo_id: str | None) -> str:
    lines = [f"# {repo_id.split('/')[-1]}", ""]
    lines.append("This dataset was created using [LeRobot](https://github.com/huggingface/lerobot)"
                 + (f", from [{source_repo_id}]({_hub_url(source_repo_id)})" if source_repo_id else "") + ".")
    lines.append("")
    if info is not None:
        lines += ["## Dataset Structure", "", "[meta/info.json](meta/info.json):", "```json",
                  json.dumps(info, indent=4), "```", ""]
    return "\n".join(lines)


def _merge_list(existing: Any, required: Sequence[str]) -> list[Any]:
    out = list(existing) if isinstance(existing, (list, tuple)) else ([existing] if existing else [])
    out += [v for v in required if v not in out]
    return out


def build_card(
    *,
    repo_id: str,
    info: Mapping[str, Any] | None = None,
    existing: str | None = None,
    provenance: Mapping[str, Any] | None = None,
    source_repo_id: str | None = None,
    license: str | None = None,
) -> DatasetCard:
    """A `DatasetCard` for `repo_id`: `existing` card text merged (kept) with LeRobot metadata and provenance.

    Args:
        repo_id (`str`):
            The dataset repo the card is for (named in a new card's body).
        info (`Mapping`, *optional*):
            meta/info.json; it replaces the info block of lerobot's "Dataset Structure" section.
        existing (`str`, *optional*):
            The card there is (its text and metadata are kept).
        provenance (`Mapping`, *optional*):
            The annotation provenance; its section replaces the previous one.
        source_repo_id (`str`, *optional*):
            The dataset this one was made from (named in a new card's body).
        license (`str`, *optional*):
            Set it; unset, the card keeps its own license, else gets lerobot-annotate's `apache-2.0`.
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    if existing and existing.strip():
        card = DatasetCard(existing, ignore_metadata_errors=True)
        text = card.text
        data = card.data
    else:
        text = _default_body(repo_id, info, source_repo_id)
        data = DatasetCardData()
        card = DatasetCard(f"---\n{data.to_yaml()}\n---\n{text}")
        data = card.data
    if license or not data.get("license"):
        data["license"] = license or DEFAULT_LICENSE
    data["tags"] = _merge_list(data.get("tags"), LEROBOT_TAGS)
    data["task_categories"] = _merge_list(data.get("task_categories"), ["robotics"])
    configs = [dict(c) for c in (data.get("configs") or []) if isinstance(c, Mapping)]
    default = next((c for c in configs if c.get("config_name") == "default"), None)
    if default is None:
        configs.insert(0, {"config_name": "default", "data_files": DATA_FILES})
    else:
        default["data_files"] = DATA_FILES
    data["configs"] = configs

    # keep lerobot's "Dataset Structure" info.json block current (the language features were added)
    if info is not None and _INFO_BLOCK.search(text):
        text = _INFO_BLOCK.sub(lambda m: m.group(1) + json.dumps(info, indent=4) + m.group(3), text, count=1)
    if provenance:
        section = render_provenance(provenance)
        if PROVENANCE_START in text and PROVENANCE_END in text:
            head, _, rest = text.partition(PROVENANCE_START)
            _, _, tail = rest.partition(PROVENANCE_END)
            text = head + section.rstrip("\n") + tail
        else:
            text = text.rstrip("\n") + "\n\n" + section
    card.text = text
    return card


def card_text(card: DatasetCard) -> str:
    """The README.md content of a card, newline-terminated."""
    content = str(card)
    return content if content.endswith("\n") else content + "\n"
