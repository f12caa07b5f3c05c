"""What goes over the wire to an OpenAI-compatible server: the request body, the completion read back,
and what an error answer says (for the retry decision and the user's message)."""

from __future__ import annotations

from typing import Any

from .config import VlmConfig
from .messages import MediaIoKwargs
from .schema import grammar_schema
from .types import JsonSchema, RawOutput


def request_body(
    config: VlmConfig,
    messages: list[dict[str, Any]],
    schema: JsonSchema | None,
    budget: int,
    *,
    media: MediaIoKwargs | None = None,
    schema_refused: bool = False,
) -> tuple[dict[str, Any], bool]:
    """(the SDK's request: top-level fields plus ``extra_body``, whether the schema is enforced).

    ``media``: vLLM's ``media_io_kwargs`` (when the video frames were taken), left out when None;
    ``schema_refused``: this server rejected ``response_format`` before, so the schema is not sent.
    """
    cfg = config
    body: dict[str, Any] = {"model": cfg.model_id, "messages": messages, "max_tokens": budget,
                            "temperature": cfg.temperature}
    if cfg.temperature > 0:
        body["top_p"] = cfg.top_p
    if cfg.seed is not None:
        body["seed"] = cfg.seed
    if cfg.reasoning_effort:  # a top-level field of the request, as lerobot-annotate 0.6.1 sends it
        body["reasoning_effort"] = cfg.reasoning_effort
    extra: dict[str, Any] = {}
    if cfg.chat_template_kwargs:
        extra["chat_template_kwargs"] = dict(cfg.chat_template_kwargs)
    if cfg.processor_kwargs:
        extra["mm_processor_kwargs"] = cfg.processor_kwargs
    if media:
        extra["media_io_kwargs"] = media  # when the sampled video frames were taken (vLLM's field)
    if extra:
        body["extra_body"] = extra
    mode = cfg.structured_output
    if schema is None or mode == "off" or schema_refused:
        return body, False
    if mode == "json_object":
        body["response_format"] = {"type": "json_object"}
        return body, False
    body["response_format"] = {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": grammar_schema(schema), "strict": True},
    }
    return body, True


def wire_json(body: dict[str, Any]) -> dict[str, Any]:
    """The JSON body as sent: ``extra_body`` keys merged at the top level (what the SDK does)."""
    wire = {k: v for k, v in body.items() if k != "extra_body"}
    wire.update(body.get("extra_body") or {})
    return wire


def read_completion(data: Any, enforced: bool) -> RawOutput:
    """A chat completion's JSON as a raw output (LookupError/TypeError/... when it is none)."""
    choice = data["choices"][0]
    usage = data.get("usage") or {}
    return RawOutput(
        text=choice["message"].get("content") or "",
        finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        schema_enforced=enforced,
    )


def short(exc: object, limit: int = 300) -> str:
    """An error (or an answer) on one line, cut at `limit` characters."""
    text = str(exc).replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."


def mentions_format(exc: object) -> bool:
    """Whether a 400 is about structured output (then ``structured_output="auto"`` asks without it)."""
    text = str(exc).lower()
    return any(word in text for word in ("response_format", "json_schema", "structured", "guided"))


def retry_after(exc: object) -> float | None:
    """The seconds of an error response's ``Retry-After`` header, None without one (or an HTTP date)."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    value = headers.get("retry-after") if headers else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


__all__ = ["mentions_format", "read_completion", "request_body", "retry_after", "short", "wire_json"]
