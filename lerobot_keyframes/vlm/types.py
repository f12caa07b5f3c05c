"""What a backend returns for one conversation, and the types of a request."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

# A conversation: [{"role": "system"|"user"|"assistant", "content": str | [block, ...]}, ...] with Qwen-VL
# blocks {"type": "text", "text"}, {"type": "image", "image": PIL.Image, "source"?: {...}},
# {"type": "video", "video": [PIL.Image, ...], "fps"?: float, "timestamps"?: [float, ...]},
# {"type": "image_url"|"video_url", ...} (servers only).
Message = Mapping[str, Any]
Conversation = Sequence[Message]
JsonSchema = Mapping[str, Any]
# How an answer ended: the model stopped, it hit the token budget, or the request failed.
FinishReason = Literal["stop", "length", "error"]


class FailureKind(str, enum.Enum):
    """Why an answer has no usable value."""

    TRUNCATED = "truncated"  # still stopped on the token budget after the larger-budget retry
    INVALID_JSON = "invalid_json"  # no JSON value could be read from the text
    SCHEMA_MISMATCH = "schema_mismatch"  # JSON, but not valid against the schema
    REQUEST_FAILED = "request_failed"  # the backend failed (server errors after retries, bad input)


@dataclass(frozen=True)
class Failure:
    """A typed failure; ``message`` says what went wrong, the raw text stays on the result."""

    kind: FailureKind
    message: str

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.message}"


@dataclass(frozen=True)
class VlmResult:
    """One conversation's answer.

    ``parsed`` is the JSON value when a schema was given and the answer is valid (else None);
    ``failure`` is None on success. ``text`` is the raw model text of the final attempt, kept for logs.
    ``finish_reason`` is ``"stop"``, ``"length"`` or ``"error"``. ``attempts`` counts generations
    (2 when a truncated answer was retried with a larger budget).
    """

    text: str
    parsed: Any = None
    failure: Failure | None = None
    finish_reason: FinishReason = "stop"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    attempts: int = 1
    schema_enforced: bool = False
    error: BaseException | None = field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass
class RawOutput:
    """What a backend's engine produced for one request, before parsing (internal)."""

    text: str
    finish_reason: FinishReason
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    schema_enforced: bool = False
    error: BaseException | None = None
