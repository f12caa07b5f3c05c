"""What may leave this machine: a local path becomes a hash (an identity) or a relative path, never itself.

Anything pushed to the Hub (provenance, the dataset card, keyframe tables) goes through these first. A local
dataset or model is named by `local_identity(path)`, `local:sha256:<16 hex>` of its resolved path: the same
folder always gives the same name (so an output can still tell which source it came from), and the name says
nothing about the folder. Free text (an error message naming a video file) keeps paths inside a known root
relative to it (the root itself `<root>`), and any other absolute path as `<local>/<last part>`. Secrets never
leave either: a value under a key that names one (`api_key`, `hf_token`, `password`, ...) and any text shaped like
a Hub token or an OpenAI-style key become `<redacted>`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

LOCAL_PREFIX = "local:sha256:"
LOCAL_PLACEHOLDER = "<local>"
# an absolute POSIX path (or ~/...) starting a token: not after a word character, ':' (URLs), '/', '.' or '-'
_ABSOLUTE = re.compile(r"(?<![\w:/.~-])~?/[^\s'\"`()\[\]{}<>,;|]*")
_WINDOWS = re.compile(r"(?<![\w])[A-Za-z]:\\[^\s'\"`()\[\]{}<>,;|]*")
_LOCAL_NAMED = re.compile(r"\blocal:(?!sha256:)(~?/[^\s'\"`()\[\]{}<>,;|]*)")  # an older record's `local:<path>`
SECRET_KEY = re.compile(r"(?i)(^|[_-])(api[_-]?key|apikey|token|secret|password|passwd|authorization|credentials?)$")
_KEY_PATTERN = re.compile(r"\b(hf_[A-Za-z0-9]{30,}|sk-[A-Za-z0-9_-]{16,})\b")  # Hub tokens, OpenAI-style API keys
REDACTED = "<redacted>"


def local_identity(path: str | Path) -> str:
    """`local:sha256:<16 hex>` of the resolved path: a stable name for a local folder that does not reveal it."""
    resolved = str(Path(path).expanduser().resolve())
    return LOCAL_PREFIX + hashlib.sha256(resolved.encode("utf-8")).hexdigest()[:16]


def is_local_path(value: str) -> bool:
    """Whether a whole string is a path of this machine (absolute, `~`, `./`, `../` or a drive letter)."""
    return bool(re.match(r"^(~|/|\.{1,2}/|[A-Za-z]:[\\/])", value))


def _last_part(path: str) -> str:
    return re.split(r"[\\/]", path.rstrip("/\\"))[-1] or "?"


def scrub_text(text: str, roots: Iterable[str | Path] = ()) -> str:
    """`text` with no absolute path left: paths inside `roots` become relative to them, others `<local>/<name>`
    (`local:<path>` becomes `local_identity(path)`); no token or key left either."""
    text = _LOCAL_NAMED.sub(lambda m: local_identity(m.group(1)), text)
    text = _KEY_PATTERN.sub(REDACTED, text)
    for root in sorted({str(Path(r)) for r in roots if r}, key=len, reverse=True):
        if root in ("/", "."):
            continue
        text = text.replace(root + "/", "").replace(root, "<root>")
    text = _ABSOLUTE.sub(lambda m: f"{LOCAL_PLACEHOLDER}/{_last_part(m.group(0))}" if len(m.group(0)) > 1 else "/",
                         text)
    return _WINDOWS.sub(lambda m: f"{LOCAL_PLACEHOLDER}/{_last_part(m.group(0))}", text)


def scrub(value: Any, roots: Iterable[str | Path] = ()) -> Any:
    """`scrub_text` over every string of a JSON-like value (mappings, lists, strings; keys kept); the value of a key
    that names a secret is `<redacted>` whatever it is (empty and null values stay, they hold none)."""
    roots = tuple(roots)
    if isinstance(value, Mapping):
        return {k: REDACTED if isinstance(k, str) and SECRET_KEY.search(k) and v not in (None, "") else scrub(v, roots)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v, roots) for v in value]
    if isinstance(value, str):
        return scrub_text(value, roots)
    return value


def local_paths_in(value: Any) -> list[str]:
    """Every absolute path of this machine found in the strings of a JSON-like value (for checks and tests)."""
    found: list[str] = []
    if isinstance(value, Mapping):
        for v in value.values():
            found += local_paths_in(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            found += local_paths_in(v)
    elif isinstance(value, str):
        found += [m.group(0) for m in _ABSOLUTE.finditer(value) if len(m.group(0)) > 1]
        found += [m.group(0) for m in _WINDOWS.finditer(value)]
    return found
