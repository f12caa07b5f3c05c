"""When the VLM layer asks again: one home for both retries, so every backend and both call paths agree.

- `TruncationRetry`: an answer that stopped on the token budget (``finish_reason == "length"``) is asked
  once more with a larger budget (``--vlm.truncation_retry_factor``, capped by
  ``--vlm.truncation_retry_max_tokens``). Every backend, sync or async, goes through it (`base.BaseBackend`).
- `RetryPolicy`: a request to a server that failed in a way that may pass (408/409/425/429/5xx, a timeout, a
  lost connection, an answer that is not a chat completion) is sent again up to ``--vlm.max_retries``
  times, after an exponential backoff with jitter that honours a server's ``Retry-After``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from .config import VlmConfig
from .types import RawOutput

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class TruncationRetry:
    """Answers that hit ``max_new_tokens`` are generated once more with `budget` tokens."""

    max_new_tokens: int
    factor: float = 2.0
    max_tokens: int = 8192

    @classmethod
    def from_config(cls, config: VlmConfig) -> TruncationRetry:
        return cls(config.max_new_tokens, config.truncation_retry_factor, config.truncation_retry_max_tokens)

    @property
    def budget(self) -> int:
        """The retry's token budget: ``max_new_tokens * factor`` capped by ``max_tokens``, never smaller."""
        return max(self.max_new_tokens, min(self.max_tokens, math.ceil(self.max_new_tokens * self.factor)))

    @property
    def enabled(self) -> bool:
        return self.budget > self.max_new_tokens

    def indices(self, raws: Sequence[RawOutput]) -> list[int]:
        """The answers to ask again: truncated ones (a failed request is not retried for its length)."""
        if not self.enabled:
            return []
        return [i for i, raw in enumerate(raws) if raw.error is None and raw.finish_reason == "length"]

    def attempts(self, retried: bool) -> int:
        return 2 if retried else 1

    def explain(self, message: str, attempts: int) -> str:
        """A truncation failure's message, with what was tried and what to change."""
        budgets = f"max_new_tokens {self.max_new_tokens}" + (f" then {self.budget}" if attempts > 1 else "")
        return (
            f"{message}; still truncated after {attempts} attempt(s) ({budgets}): "
            "raise --vlm.max_new_tokens or bound the schema (lerobot_keyframes.vlm.schema)"
        )


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failed server request is sent again, and how long to wait first.

    ``max_retries`` retries after the first attempt; the k-th wait (k from 0) is drawn from
    ``[c / 2, c]`` with ``c = min(backoff_max, backoff * 2**k)`` ("equal jitter"), and is at least a
    server's ``Retry-After`` (itself capped by ``backoff_max``).
    """

    max_retries: int = 5
    backoff: float = 0.5
    backoff_max: float = 30.0
    retryable_status: frozenset[int] = RETRYABLE_STATUS

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"--vlm.max_retries must be >= 0 (got {self.max_retries})")
        if self.backoff < 0 or self.backoff_max < 0:
            raise ValueError(f"retry delays must be >= 0 (got {self.backoff}, cap {self.backoff_max})")

    @classmethod
    def from_config(cls, config: VlmConfig) -> RetryPolicy:
        return cls(config.max_retries, config.retry_backoff, config.retry_backoff_max)

    @property
    def attempts(self) -> int:
        """Most attempts of one request, the first included."""
        return self.max_retries + 1

    def retries_status(self, status: int) -> bool:
        """Whether an HTTP status may pass on a second try (rate limits, overload, server errors)."""
        return status in self.retryable_status

    def delay(self, retry: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first retry)."""
        ceiling = min(self.backoff_max, self.backoff * (2**retry))
        delay = ceiling / 2 + (rng or random).uniform(0, ceiling / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max))
        return delay


__all__ = ["RETRYABLE_STATUS", "RetryPolicy", "TruncationRetry"]
