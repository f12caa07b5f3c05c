"""Write one benchmark's section into docs/benchmarks.md, leaving the other sections as they are."""

from __future__ import annotations

import re
from pathlib import Path


def write_section(path: Path, section: str) -> None:
    """Replace the section that starts with `section`'s first line (its `## ` heading), or append it."""
    heading = section.splitlines()[0]
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip("\n") + "\n\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip("\n") + "\n")
