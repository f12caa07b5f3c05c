"""`meta/annotation_provenance.json`: what produced a dataset's language rows, in a form that may be published.

Written by every annotation run (and `merge`, and `review-apply`), read back by `push` (which source the root
came from), the validator (failed episodes) and the dataset card. What is written is already public: the
source is `user/name@revision` for a Hub dataset and `local:sha256:<hash>` for a local one, a local model folder
is named by its hash and its folder name, and no text in it holds a path of this machine (`utils.public`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..utils.public import LOCAL_PREFIX, is_local_path, local_identity, scrub

PROVENANCE_PATH = "meta/annotation_provenance.json"


class ProvenanceError(ValueError):
    """The provenance file exists but cannot be read: the source it names is unknown, so nothing may rely on it."""


@dataclass(frozen=True)
class RecordedSource:
    """The source a provenance record names: a Hub repo (and revision), and/or the public source identity."""

    repo_id: str | None = None
    revision: str | None = None
    identity: str | None = None  # `hub:user/name` or `local:sha256:...` (older records: `local:<path>`)

    @property
    def known(self) -> bool:
        return bool(self.repo_id or self.identity)


def read_provenance(root: str | Path) -> dict[str, Any] | None:
    """The root's provenance record, or None when it has none.

    Raises:
        `ProvenanceError`: the file exists but is not a JSON object.
    """
    path = Path(root) / PROVENANCE_PATH
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ProvenanceError(f"{path}: unreadable provenance ({exc})") from None
    if not isinstance(record, dict):
        raise ProvenanceError(f"{path}: the provenance is not a JSON object")
    return record


def recorded_source(record: Mapping[str, Any] | None) -> RecordedSource:
    """The source a provenance record names (empty when it names none)."""
    if not record:
        return RecordedSource()

    def text(key: str) -> str | None:
        value = record.get(key)
        return value if isinstance(value, str) and value else None

    identity = text("source_identity")
    if identity is not None:
        identity = public_source_identity(identity)  # an older record's `local:<path>`: compared by its hash
    repo = text("source_repo_id")
    if repo is None and identity is not None and identity.startswith("hub:"):
        repo = identity[len("hub:"):]  # the identity names the Hub source as well
    return RecordedSource(repo, text("source_revision"), identity)


def public_source_identity(identity: str) -> str:
    """`hub:user/name` as it is; `local:<path>` as `local:sha256:<hash>` of that path."""
    if identity.startswith("local:") and not identity.startswith(LOCAL_PREFIX):
        return local_identity(identity[len("local:"):])
    return identity


def _local_value(value: Any) -> bool:
    """A path of this machine: written as one, or a relative name that exists here (a model folder `models/m`)."""
    if not isinstance(value, str) or not value or value.startswith(LOCAL_PREFIX):
        return False
    try:
        return is_local_path(value) or Path(value).expanduser().exists()
    except OSError:  # a name too long to be a path
        return False


def _public_record(record: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(record)
    identity = out.get("source_identity")
    if isinstance(identity, str):
        out["source_identity"] = public_source_identity(identity)
    model = out.get("model_id")
    if _local_value(model):
        out["model_id"] = local_identity(model)
        out.setdefault("model_name", Path(str(model).rstrip("/\\")).name)
    origin = out.get("kept_rows_origin")
    if isinstance(origin, Mapping) and _local_value(origin.get("source")):
        out["kept_rows_origin"] = {**origin, "source": local_identity(origin["source"])}
    repo, revision = out.get("source_repo_id"), out.get("source_revision")
    if isinstance(repo, str) and repo:
        out["source"] = f"{repo}@{revision}" if isinstance(revision, str) and revision else repo
    elif isinstance(out.get("source_identity"), str) and out["source_identity"].startswith(LOCAL_PREFIX):
        out["source"] = out["source_identity"]
    elif _local_value(out.get("source")):
        out["source"] = local_identity(out["source"])
    if isinstance(out.get("history"), list):
        out["history"] = [_public_record(h) if isinstance(h, Mapping) else h for h in out["history"]]
    return out


def public_provenance(record: Mapping[str, Any], *, roots: Iterable[str | Path] = ()) -> dict[str, Any]:
    """`record` as it may be published: the source as `user/name@revision` or `local:sha256:<hash>`, a local
    model folder by its hash (and `model_name`, its folder name), and every other path of this machine out of
    its text: inside one of `roots` relative to it, elsewhere `<local>/<last part>`. Idempotent."""
    return scrub(_public_record(record), roots)


def provenance_text(record: Mapping[str, Any]) -> str:
    """The file's content for a record (stable: sorted keys, 2-space indent)."""
    return json.dumps(record, indent=2, sort_keys=True)
