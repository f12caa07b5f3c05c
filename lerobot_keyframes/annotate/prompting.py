"""Prompt templates (`prompts/*.txt`), loaded once, with a content hash for staging keys and provenance."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class Prompt:
    name: str
    template: str

    @property
    def sha(self) -> str:
        return hashlib.sha256(self.template.encode()).hexdigest()[:12]

    def render(self, **values: Any) -> str:
        try:
            return self.template.format(**values)
        except KeyError as exc:
            raise KeyError(f"prompt {self.name!r} needs the value {exc.args[0]!r}") from exc


@cache
def load_prompt(name: str) -> Prompt:
    text = resources.files("lerobot_keyframes.annotate").joinpath("prompts").joinpath(f"{name}.txt").read_text()
    return Prompt(name=name, template=text)


def prompt_hashes(names: list[str]) -> dict[str, str]:
    return {n: load_prompt(n).sha for n in names}
