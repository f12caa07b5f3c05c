"""Annotation modules: one interface (`base.Module`), one registry (`registry`), the built-in modules.

Built in, in run order: `plan` (subtasks, plan, memory, task rephrasings; its result is the spans),
`interjections` (cues on subtask boundaries with spoken replies; requires plan), `vqa` (frame-grounded
questions; uses plan's task) and `motion` (robot-signal rows, no model). `spans` cleans the model's subtask
spans and `grounding` snaps their boundaries to robot events (plan's helpers); `prompting` holds the prompt
templates (`prompts/*.txt`) and the chat turn every module sends, `schemas` the JSON schemas of the answers.
A module of one's own subclasses `Module` and is named with `--modules=pkg.module:Class` (README: "Write
your own module").
"""

from __future__ import annotations

from .base import SPEECH, KeyInputs, Module, ModuleOutput
from .interjections import InterjectionsModule
from .motion import MotionModule
from .plan import PlanModule, PlanResult
from .prompting import Prompt, image_blocks, load_prompt, user_turn
from .registry import BUILT_IN, ENTRY_POINT_GROUP, ModuleError, RunModules, load_modules, run_modules
from .vqa import VqaModule

__all__ = ["BUILT_IN", "ENTRY_POINT_GROUP", "SPEECH", "InterjectionsModule", "KeyInputs", "Module", "ModuleError",
           "ModuleOutput", "MotionModule", "PlanModule", "PlanResult", "Prompt", "RunModules", "VqaModule",
           "image_blocks", "load_modules", "load_prompt", "run_modules", "user_turn"]
