"""Helpers of the adversarial suite: tiny hostile datasets built per test, a whole-tree hash, the CLI.

Every scenario asserts the same things: the exit code, a message that names what is wrong (file, episode,
camera, time), the source's bytes unchanged (`tree_hash` before == after), the output complete or absent,
and no secret in anything printed or written.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path


def model_flags(api_base: str) -> list[str]:
    """`annotate` flags for an OpenAI-compatible server at `api_base` (the fake server counts every request)."""
    return ["--vlm.backend=openai", f"--vlm.api_base={api_base}", "--vlm.max_retries=0",
            "--vlm.model_id=scripted-qwen2.5-vl"]


def tree_hash(root: Path) -> str:
    """sha256 over every entry under `root` (links not followed): names, link targets and file bytes."""
    h = hashlib.sha256()
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        here = Path(dirpath)
        h.update(b"D" + here.relative_to(root).as_posix().encode() + b"\0")
        for name in sorted(filenames + [d for d in dirnames if (here / d).is_symlink()]):
            path = here / name
            rel = path.relative_to(root).as_posix().encode()
            if path.is_symlink():
                h.update(b"L" + rel + b"\0" + os.readlink(path).encode() + b"\0")
            else:
                h.update(b"F" + rel + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def files_containing(root: Path, needle: bytes) -> list[str]:
    """Files under `root` (links followed only if they stay readable) whose bytes contain `needle`."""
    hits = []
    for path in Path(root).rglob("*"):
        try:
            if path.is_file() and needle in path.read_bytes():
                hits.append(path.relative_to(root).as_posix())
        except OSError:
            continue
    return hits


def one_error_line(err: str) -> str:
    """The `error: ...` line of stderr (the CLI's one-line refusal), failing when there is a traceback."""
    assert "Traceback" not in err, err[-2000:]
    lines = [line for line in err.splitlines() if re.match(r"(lerobot-keyframes [\w-]+: )?error: ", line)]
    assert len(lines) == 1, err[-2000:]
    return lines[0]


def assert_no_secret(secret: str, texts: Iterable[str] = (), roots: Iterable[Path] = ()) -> None:
    for text in texts:
        assert secret not in text
    for root in roots:
        assert files_containing(root, secret.encode()) == []
