"""Which modules exist, in which order they run and which of them run: the one list every part of a run reads.

The built-in modules (plan, interjections, vqa, motion) are always registered; a user's own are added by name,
`pkg.module:Class` or the name of an entry point of group `lerobot_keyframes.modules` (`--modules=...`,
`AnnotateConfig.modules`). Each runs when its `enabled` setting is true (`--<name>.enabled`, as in
lerobot-annotate). Everything that can be wrong with a set of modules is refused here, in one line, before any
work: an unknown or unimportable name, two modules of one name, a name taken by a flag group, a requirement
that is not registered, a cycle of requirements, a style lerobot does not know, and two enabled modules
writing one style.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from ...language.vocabulary import KNOWN_STYLES
from ..config import AnnotateConfig, check_options, given_class
from .base import SPEECH, Module
from .interjections import InterjectionsModule
from .motion import MotionModule
from .plan import PlanModule
from .prompting import load_prompt
from .vqa import VqaModule

ENTRY_POINT_GROUP = "lerobot_keyframes.modules"
BUILT_IN: tuple[type[Module], ...] = (PlanModule, InterjectionsModule, VqaModule, MotionModule)  # in run order
# flag groups and settings a module of one's own may not be named after (its flags are --<name>.*)
RESERVED = frozenset({f.name for f in dataclasses.fields(AnnotateConfig)} - {m.name for m in BUILT_IN}
                     | {"vlm", "job", "shards", "config_path", "resume", "help"})
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
STYLES = KNOWN_STYLES | {SPEECH}


class ModuleError(ValueError):
    """A module cannot be registered or run with the others; the message names it and says what to change."""


def load_class(spec: str) -> type[Module]:
    """The module class of `pkg.module:Class`, or of the entry point named `spec` in `lerobot_keyframes.modules`
    (a class given to `AnnotateConfig` in this process is used as it is)."""
    found = given_class(spec) or _import_class(spec)
    if not (isinstance(found, type) and issubclass(found, Module)):
        raise ModuleError(f"--modules={spec}: {found!r} is not a subclass of lerobot_keyframes.annotate.modules.Module")
    return found


@functools.cache
def _import_class(spec: str) -> Any:
    """`load_class` by import or entry point, once per process (a run resolves its modules for every episode)."""
    where = f"--modules={spec}"
    found: Any = None
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            found = importlib.import_module(module_name)
        except (ImportError, TypeError, ValueError) as exc:  # TypeError/ValueError: `../x`, `.x` or an empty name
            raise ModuleError(f"{where}: cannot import {module_name} ({type(exc).__name__}: {exc}); install its "
                              f"package or put it on PYTHONPATH") from None
        for part in attr.split("."):
            found = getattr(found, part, None)
            if found is None:
                raise ModuleError(f"{where}: {module_name} has no {attr!r}")
    else:
        points = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        if spec not in points:
            built = ", ".join(m.name for m in BUILT_IN)
            raise ModuleError(f"{where}: no such module; give pkg.module:Class or the name of an installed entry point "
                              f"of group {ENTRY_POINT_GROUP} ({', '.join(sorted(points)) or 'none installed'}); the "
                              f"built-in modules ({built}) are always there, switched by --<name>.enabled")
        found = points[spec].load()
    return found


def check_class(cls: type[Module], where: str) -> None:
    """What a module class declares is complete and consistent (see `Module`)."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not _NAME.match(name):
        raise ModuleError(f"{where}: a module's name must be a lowercase identifier, got {name!r}")
    if name in RESERVED:
        raise ModuleError(f"{where}: the name {name!r} is taken by the run's own settings (--{name}); choose another")
    config_class = getattr(cls, "config_class", None)
    if not (dataclasses.is_dataclass(config_class) and config_class.__dataclass_params__.frozen):
        raise ModuleError(f"{where}: module {name!r}: config_class must be a frozen dataclass, got {config_class!r}")
    unknown = sorted(set(cls.styles) - STYLES)
    unknown += sorted({s for pair in cls.anchored.items() for s in pair} - STYLES)
    if unknown:
        raise ModuleError(f"{where}: module {name!r} declares style(s) {unknown} that lerobot does not know; "
                          f"known: {sorted(STYLES)}")
    if not cls.styles:
        raise ModuleError(f"{where}: module {name!r} owns no style: declare the styles of its rows in `styles`")
    if not set(cls.anchored.values()) <= set(cls.styles):
        raise ModuleError(f"{where}: module {name!r}: an anchored row's anchor must be a style it owns")
    if cls.run is Module.run:
        raise ModuleError(f"{where}: module {name!r} does not implement `async def run(self, ctx, upstream)`")
    for prompt in cls.prompts:
        if isinstance(prompt, str):
            try:
                load_prompt(prompt)
            except OSError:
                raise ModuleError(f"{where}: module {name!r}: no prompt template {prompt!r} in lerobot_keyframes; "
                                  "declare your own templates as Prompt(name, text)") from None


def _ordered(modules: list[Module]) -> tuple[Module, ...]:
    """Each module after the ones it requires or uses, otherwise in registration order (a cycle is refused)."""
    names = {m.name for m in modules}
    for m in modules:
        missing = [r for r in (*m.requires, *m.uses) if r not in names]
        if missing:
            raise ModuleError(f"module {m.name!r} requires {missing}, which no registered module is named "
                              f"(registered: {sorted(names)})")
    done: list[Module] = []
    waiting = list(modules)
    while waiting:
        ready = next((m for m in waiting if all(r in {d.name for d in done} for r in (*m.requires, *m.uses))), None)
        if ready is None:
            raise ModuleError(f"modules {[m.name for m in waiting]} require each other in a cycle")
        done.append(ready)
        waiting.remove(ready)
    return tuple(done)


def load_modules(specs: tuple[str, ...] = ()) -> tuple[Module, ...]:
    """The built-in modules and those of `specs`, checked and in run order."""
    return _load(tuple((f"--modules={s}", load_class(s)) for s in specs))


@functools.cache
def _load(given: tuple[tuple[str, type[Module]], ...]) -> tuple[Module, ...]:
    modules: list[Module] = []
    for where, cls in [*((f"module {c.name}", c) for c in BUILT_IN), *given]:
        check_class(cls, where)
        twin = next((m for m in modules if m.name == cls.name), None)
        if twin is not None:
            raise ModuleError(f"{where}: two modules are named {cls.name!r} ({type(twin).__module__}."
                              f"{type(twin).__qualname__} and {cls.__module__}.{cls.__qualname__}); rename one")
        modules.append(cls())
    return _ordered(modules)


@dataclass(frozen=True)
class RunModules:
    """The modules of one run: every registered one in run order (`all`), and those its config enables."""

    config: AnnotateConfig
    all: tuple[Module, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.all)

    @property
    def enabled(self) -> tuple[Module, ...]:
        return tuple(m for m in self.all if m.enabled(self.config))

    @property
    def enabled_names(self) -> list[str]:
        return [m.name for m in self.enabled]

    @property
    def asks_model(self) -> bool:
        """True when an enabled module asks the VLM (a run of motion alone needs no model)."""
        return any(m.asks_model for m in self.enabled)

    @property
    def owned_styles(self) -> frozenset[str]:
        """The styles the enabled modules own: a run replaces the existing rows of these ("speech": say atoms)."""
        return frozenset().union(*(m.styles for m in self.enabled))

    def get(self, name: str) -> Module:
        for m in self.all:
            if m.name == name:
                return m
        raise ModuleError(f"no module named {name!r}; registered: {', '.join(self.names)}")

    def config_of(self, module: Module) -> Any:
        return module.config_of(self.config)

    def order(self, names: Iterable[str]) -> list[str]:
        """`names` in run order; names no registered module has (staged by another run) last, sorted."""
        names = set(names)
        return [n for n in self.names if n in names] + sorted(names - set(self.names))

    def check(self) -> None:
        """Refuse, before any work, a module config without its module and two enabled modules writing one style."""
        for name, value in self.config.module_configs:
            if name not in self.names:
                raise ModuleError(f"settings for module {name!r}, which is not registered (add it with --modules=...); "
                                  f"registered: {', '.join(self.names)}")
            module = self.get(name)
            if not isinstance(value, module.config_class):
                raise ModuleError(f"module_configs[{name!r}] must be a {module.config_class.__name__}, got "
                                  f"{type(value).__name__}")
            check_options(value, f"{name}.")
        writers: dict[str, str] = {}
        for m in self.enabled:
            for style in sorted(m.writes(self.config_of(m))):
                if style in writers:
                    raise ModuleError(
                        f"modules {writers[style]!r} and {m.name!r} both write {style!r} rows: switch one off "
                        f"(--{writers[style]}.enabled=false or --{m.name}.enabled=false) or set one so it writes "
                        f"none; nothing was run")
                writers[style] = m.name


def run_modules(config: AnnotateConfig) -> RunModules:
    """The checked modules of a run (built-in and `config.modules`); a `ModuleError` names what is wrong."""
    modules = RunModules(config, load_modules(tuple(config.modules)))
    modules.check()
    return modules
