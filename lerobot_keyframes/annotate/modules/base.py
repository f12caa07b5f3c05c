"""The one shape of an annotation module (as datatrove's `PipelineStep`): declared once, read by every part.

A module is a class with a few class attributes and two methods:

    class Reasoning(Module):
        name = "reasoning"                   # staging file, flags `--reasoning.*`, provenance
        styles = frozenset({"plan"})         # the styles it owns: a run replaces existing rows of these
        config_class = ReasoningConfig       # a frozen dataclass; its `enabled` field switches the module
        requires = ("plan",)                 # runs after these, and gets their result in `upstream`
        prompts = (REASONING_PROMPT,)        # hashed into the staging key and the provenance

        def keyframes(self, episode, config, upstream=None): ...   # camera -> frames.policies policy
        async def run(self, ctx, upstream): ...                       # -> rows, or ModuleOutput(rows, result)

The registry (`registry.py`) knows every module: the built-in ones (plan, interjections, vqa, motion) and
a user's own (`--modules=my_pkg.ecot:EcotModule`, or an entry point of group `lerobot_keyframes.modules`).
The scheduler (`engine.py`), the staging keys, the writer's owned styles, the CLI flags, provenance and
every executor (datasets.map, Ray, HF Jobs shards) read it; no module is named anywhere else.

What a module passes downstream is its *result* (`ModuleOutput.result`; plan: its spans). It is staged with
the rows (`save_result`: a JSON object) and rebuilt from there on resume (`load_result`), so a re-run that
reuses a staged module gives later modules exactly what the first run gave them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ..config import AnnotateConfig, config_hash
from .prompting import Prompt, load_prompt

if TYPE_CHECKING:
    from ...frames.policies import KeyframePolicy
    from ...language.rows import LanguageRow
    from ..context import EpisodeContext, EpisodeView

SPEECH = "speech"  # the style-less speech atom (`style` null, one `say` call), as styles are named in declarations


@dataclass(frozen=True)
class ModuleOutput:
    """What `Module.run` returns when later modules use a result besides the rows (plain rows are fine too)."""

    rows: Sequence[LanguageRow]
    result: Any = None  # passed to the modules that require this one; staged with `save_result`


@dataclass(frozen=True)
class KeyInputs:
    """What every staging key may include besides the module's own config: model, source, run seed, upstream."""

    run: AnnotateConfig  # the whole run's config (a module reading another's settings keys them too)
    model: Mapping[str, Any]  # `keys.model_identity(vlm_config)`
    source: str  # `keys.source_identity(config)`
    upstream: tuple[str, ...]  # the keys of the modules this one requires or uses, in that order


class Module:
    """Base class of an annotation module; subclasses set the class attributes and implement `run`."""

    name: ClassVar[str]  # a Python identifier: the staging file `<name>.jsonl`, flags `--<name>.*`
    styles: ClassVar[frozenset[str]] = frozenset()  # owned styles ("speech": the say atom); rows of these only
    config_class: ClassVar[type]  # frozen dataclass; an `enabled: bool` field switches the module
    requires: ClassVar[tuple[str, ...]] = ()  # modules whose result this one needs (it fails the episode without)
    uses: ClassVar[tuple[str, ...]] = ()  # modules whose result it takes when there is one (it runs after them)
    prompts: ClassVar[tuple[str | Prompt, ...]] = ()  # prompt names (prompts/*.txt here) or `Prompt`s of its own
    asks_model: ClassVar[bool] = True  # False: the run needs no VLM for this module (motion)
    # Rows of another style this module writes at the times of its own rows of an owned style: style -> anchor
    # (interjections: the `plan` row of each `interjection`). They belong to this module, not the style's owner.
    anchored: ClassVar[Mapping[str, str]] = {}

    # -- declarations -----------------------------------------------------------------------------------
    def config_of(self, run: AnnotateConfig) -> Any:
        """This module's config in the run (`--<name>.*`; the class defaults when none was given)."""
        return run.module_config(self.name, self.config_class)

    def enabled(self, run: AnnotateConfig) -> bool:
        return bool(getattr(self.config_of(run), "enabled", True))

    def writes(self, config: Any) -> frozenset[str]:
        """The styles it writes under `config` (two enabled modules writing one style are refused before any
        work); default: every style it owns."""
        return frozenset(self.styles)

    def prompt_hashes(self) -> dict[str, str]:
        return {p.name: p.sha for p in (load_prompt(p) if isinstance(p, str) else p for p in self.prompts)}

    def key_parts(self, config: Any, inputs: KeyInputs) -> tuple[Any, ...]:
        """Everything that shapes its rows, for the staging key: its config, the model and prompts (when it asks
        the model), the seed, and the upstream keys (else the source, which those include)."""
        model = (inputs.model, self.prompt_hashes()) if self.asks_model else ()
        return (self.name, config, *model, inputs.run.seed, *(inputs.upstream or (inputs.source,)))

    def staging_key(self, config: Any, inputs: KeyInputs) -> str:
        return config_hash(*self.key_parts(config, inputs))

    # -- the work -----------------------------------------------------------------------------------------
    def keyframes(self, episode: EpisodeView, config: Any,
                  upstream: Mapping[str, Any] | None = None) -> dict[str, KeyframePolicy]:
        """camera -> the policy of the frames it will ask for (decoded once, shared with other modules, and
        prefetched by the keyframe stage). Without `upstream` (prefetch): what is known before any module ran."""
        return {}

    async def run(self, ctx: EpisodeContext, upstream: Mapping[str, Any]) -> Sequence[LanguageRow] | ModuleOutput:
        """The episode's rows (and a result for later modules); `upstream[name]` is each required or used
        module's result (a used module that did not run is absent). Raise `AnnotationError` to fail the episode."""
        raise NotImplementedError

    # -- its result on disk -------------------------------------------------------------------------------
    def save_result(self, result: Any) -> dict[str, Any]:
        """The staged form of `result` (a JSON object; default: a mapping or dataclass as it is, else nothing)."""
        if result is None:
            return {}
        if dataclasses.is_dataclass(result) and not isinstance(result, type):
            return dataclasses.asdict(result)
        return dict(result)

    def load_result(self, info: Mapping[str, Any]) -> Any:
        """The result back from its staged form (default: the staged object; None when empty)."""
        return dict(info) or None

    def summarize(self, staged: Mapping[int, Mapping[str, Any] | None]) -> tuple[list[str], dict[str, Any]]:
        """After the run, from each finished episode's staged result (None: not staged): lines for the run's
        summary and entries for the provenance record. Default: none."""
        return [], {}

    def __repr__(self) -> str:
        return f"<module {self.name}>"
