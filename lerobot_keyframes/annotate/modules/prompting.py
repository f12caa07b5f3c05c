"""Prompt templates (`prompts/*.txt`), loaded once, with a content hash for staging keys and provenance, and the
chat turn every module sends (images, then the text)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class Prompt:
    """A named template (`str.format` fields); a module of one's own may declare its own as `Prompt(name, text)`."""

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
    text = resources.files(__package__).joinpath("prompts").joinpath(f"{name}.txt").read_text()
    return Prompt(name=name, template=text)


def user_turn(blocks: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """A one-turn conversation: the user's content blocks (images), then the prompt text."""
    return [{"role": "user", "content": [*blocks, {"type": "text", "text": text}]}]


def image_blocks(images: list[Any]) -> list[dict[str, Any]]:
    return [{"type": "image", "image": image} for image in images]
