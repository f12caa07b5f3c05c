"""A module of your own: at each subtask start, the remaining plan with the model's reasoning for the next step
(an embodied chain-of-thought row), built on the plan module's spans and asked of the VLM.

    python examples/reasoning_module.py [OUT_DIR]

It runs through the same scheduler, staging (resume), validator and writer as the built-in modules. It writes
lerobot `plan` rows, so the plan module is told not to (`emit_plan=False`; two modules writing one style are
refused before any work). From the command line, with this file on PYTHONPATH:

    lerobot-keyframes annotate --root=DATASET --out=OUT --modules=reasoning_module:ReasoningModule \
        --plan.emit_plan=false --reasoning.frames_per_subtask=3
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lerobot_keyframes.annotate import EpisodeContext, EpisodeView, Module, Prompt
from lerobot_keyframes.annotate.modules import PlanResult, image_blocks, schemas, user_turn
from lerobot_keyframes.frames.policies import KeyframePolicy, at
from lerobot_keyframes.language import LanguageRow
from lerobot_keyframes.utils.timeline import evenly_spaced


@dataclass(frozen=True)
class ReasoningConfig:
    """`reasoning`: why each subtask comes next, in the plan row at its start."""

    enabled: bool = True  # run the reasoning module
    frames_per_subtask: int = 2  # frames of each subtask the model sees
    max_chars: int = 160  # longest reasoning (the answer's schema bounds it)


REASONING = Prompt("reasoning", (
    "The robot's task: {task}.\n"
    "It is about to do step {index} of {count}: \"{subtask}\". The images show that step.\n"
    "In one sentence, say why this step comes now and what the robot must watch while doing it.\n"
    'Answer with JSON: {{"reasoning": "..."}}'
))


class ReasoningModule(Module):
    name = "reasoning"
    styles = frozenset({"plan"})  # it owns plan rows: a run replaces existing ones
    config_class = ReasoningConfig
    requires = ("plan",)  # the spans; `upstream["plan"]` is the plan module's `PlanResult`
    prompts = (REASONING,)  # hashed into the staging key: an edited prompt recomputes

    def keyframes(self, episode: EpisodeView, config: ReasoningConfig,
                  upstream: Mapping[str, Any] | None = None) -> dict[str, KeyframePolicy]:
        """The frames of each subtask (known once the plan module ran; decoded once, shared with the others)."""
        plan: PlanResult | None = (upstream or {}).get("plan")
        if plan is None:
            return {}
        times = [t for span in plan.spans for t in span_times(episode, span, config.frames_per_subtask)]
        return {episode.default_camera: at(*times)} if times else {}

    async def run(self, ctx: EpisodeContext, upstream: Mapping[str, Any]) -> list[LanguageRow]:
        config: ReasoningConfig = self.config_of(ctx.config)
        plan: PlanResult = upstream["plan"]
        camera = ctx.default_camera
        conversations = []
        for k, span in enumerate(plan.spans):
            frames = await ctx.frames_at(camera, span_times(ctx, span, config.frames_per_subtask))
            text = REASONING.render(task=plan.task or ctx.task, index=k + 1, count=len(plan.spans), subtask=span.text)
            conversations.append(user_turn(image_blocks(frames), text))
        schema = schemas.obj(reasoning=schemas.text(config.max_chars))
        answers = await ctx.ask(conversations, [schema] * len(conversations)) if conversations else []
        rows = []
        for k, (span, answer) in enumerate(zip(plan.spans, answers)):
            steps = "\n".join(f"{j}. {s.text}" for j, s in enumerate(plan.spans[k:], 1))
            reasoning = " ".join(answer["reasoning"].split())
            rows.append(LanguageRow("assistant", f"{steps}\nWhy now: {reasoning}", "plan", span.start))
        return rows


def span_times(episode: EpisodeView, span: Any, n: int) -> list[float]:
    """`n` exact frame times spread over the span's own frames."""
    picks = evenly_spaced(span.end_index - span.start_index, max(1, n)) + span.start_index
    return [episode.frame_time(int(i)) for i in picks]


def main(out: Path) -> None:
    import lerobot_keyframes as lk
    from lerobot_keyframes.annotate import (
        AnnotateConfig,
        InterjectionsConfig,
        PlanConfig,
        VqaConfig,
        run_annotation,
    )
    from lerobot_keyframes.language import read_dataset_annotations
    from lerobot_keyframes.testing.tiny_qwen import tiny_qwen_cached
    from lerobot_keyframes.vlm import VlmConfig

    root = lk.default_sample_dataset(episodes=1)
    config = AnnotateConfig(
        root=root, out=out, only_episodes=(0,), modules=(ReasoningModule,),
        module_configs={"reasoning": ReasoningConfig(frames_per_subtask=1)},
        plan=PlanConfig(emit_plan=False, n_task_rephrasings=0), interjections=InterjectionsConfig(enabled=False),
        vqa=VqaConfig(enabled=False),
    )
    vlm_config = VlmConfig(backend="transformers", model_id=str(tiny_qwen_cached("qwen2_5_vl")), max_new_tokens=256)
    result = run_annotation(config, vlm_config)
    print(result.summary())
    again = run_annotation(config, vlm_config)  # a re-run resumes: every module comes from staging
    print(f"re-run: {dict(again.modules_reused)} reused, {again.stats.calls} model calls")
    annotations, _ = read_dataset_annotations(out)
    for row in annotations[0].persistent:
        if row.style == "plan":
            print(f"t={row.timestamp:.3f} {row.content!r}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "reasoning-annotated"))
