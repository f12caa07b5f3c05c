"""Staging keys: a hash of everything that determines a module's rows, so a re-run reuses only what matches."""

from __future__ import annotations

from typing import Any

from .config import AnnotateConfig, config_hash
from .interjections import PROMPTS as INTERJECTION_PROMPTS
from .plan import PROMPTS as PLAN_PROMPTS
from .prompting import prompt_hashes
from .vqa import PROMPTS as VQA_PROMPTS


def module_keys(config: AnnotateConfig, vlm: Any) -> dict[str, str]:
    """Staging keys: module config + model identity + prompts + seed; later modules include the plan key."""
    identity = {
        "model_id": getattr(vlm, "model_id", None),
        "revision": getattr(vlm, "revision", None),
        "temperature": getattr(vlm, "temperature", None),
        "top_p": getattr(vlm, "top_p", None),
        "seed": getattr(vlm, "seed", None),
        "max_new_tokens": getattr(vlm, "max_new_tokens", None),
        "chat_template_kwargs": getattr(vlm, "chat_template_kwargs", None),
    }
    plan = config_hash("plan", config.plan, identity, prompt_hashes(PLAN_PROMPTS), config.seed)
    return {
        "plan": plan,
        "interjections": config_hash(
            "interjections", config.interjections, identity, prompt_hashes(INTERJECTION_PROMPTS), config.seed, plan
        ),
        "vqa": config_hash("vqa", config.vqa, identity, prompt_hashes(VQA_PROMPTS), config.seed, plan),
        "motion": config_hash("motion", config.motion),
    }
