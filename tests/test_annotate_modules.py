"""Annotation modules: one interface and one registry. A module of one's own (examples/reasoning_module.py) runs
through the same scheduler, staging (resume, kill -9), validator and writer as the built-in ones, from the Python
API and the command line; a broken set of modules is refused in one line before any work; the built-in modules'
staging keys are those of the release before the interface, so its staging resumes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lerobot_keyframes.annotate import (
    AnnotateConfig,
    InterjectionsConfig,
    Module,
    ModuleError,
    PlanConfig,
    QualityConfig,
    VqaConfig,
    run_annotation,
)
from lerobot_keyframes.language import LanguageRow, read_dataset_annotations
from lerobot_keyframes.testing.fake_openai import FakeOpenAIServer
from lerobot_keyframes.testing.scripted import ScriptedBackend, plausible_answers, prompt_text
from lerobot_keyframes.vlm.config import VlmConfig

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
sys.path.insert(0, str(EXAMPLES))
from reasoning_module import ReasoningConfig, ReasoningModule  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent / "adversarial"))
import _b_helpers as h  # noqa: E402

VLM = VlmConfig(backend="openai", model_id="scripted-qwen2.5-vl")
SPEC = "reasoning_module:ReasoningModule"
CRASH = "LEROBOT_KEYFRAMES_CRASH_AT"


def _config(root: Path, out: Path, **kw: Any) -> AnnotateConfig:
    """plan (no plan rows: the reasoning module writes them) + interjections + reasoning; no VQA (faster)."""
    kw.setdefault("plan", PlanConfig(emit_plan=False, n_task_rephrasings=0, min_subtask_seconds=0.3))
    kw.setdefault("modules", (ReasoningModule,))
    return AnnotateConfig(root=root, out=out, interjections=InterjectionsConfig(interjection_min_t=0.1),
                          vqa=VqaConfig(enabled=False), **kw)


def _plans(root: Path) -> dict[int, dict[float, str]]:
    anns, _ = read_dataset_annotations(root)
    return {e: {r.timestamp: r.content for r in a.persistent if r.style == "plan"} for e, a in anns.items()}


def test_a_module_of_ones_own_runs_stages_and_resumes_like_a_built_in_one(sample_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    backend = ScriptedBackend(plausible_answers)
    result = run_annotation(_config(sample_root, out), VLM, vlm=backend)
    assert result.failures == {} and result.validation.ok, result.validation.format()
    assert result.modules_run == {"plan": 2, "interjections": 2, "reasoning": 2}
    anns, _ = read_dataset_annotations(out)
    for e, ann in anns.items():
        starts = {r.timestamp for r in ann.persistent if r.style == "subtask"}
        cues = {r.timestamp for r in ann.events if r.style == "interjection"}
        plans = {r.timestamp: r.content for r in ann.persistent if r.style == "plan"}
        assert set(plans) == starts and cues and cues <= starts, e  # one plan row per subtask start, no more
        for t, content in plans.items():  # an interjection's own plan row wins at its time (anchored rows)
            assert ("Why now:" in content) == (t not in cues), (e, t, content)
    assert (result.staging_dir / "episode-000000" / "reasoning.jsonl").is_file()
    record = h.provenance(out)
    assert record["modules"] == ["plan", "interjections", "reasoning"]
    assert "reasoning" in record["module_keys"] and "reasoning" in record["prompt_hashes"]

    first = h.file_hashes(out, ("meta/annotation_provenance.json",))
    again_backend = ScriptedBackend(plausible_answers)
    again = run_annotation(_config(sample_root, out), VLM, vlm=again_backend)  # resume: everything is staged
    assert again_backend.calls == 0 and again.modules_reused == {"plan": 2, "interjections": 2, "reasoning": 2}
    assert h.file_hashes(out, ("meta/annotation_provenance.json",)) == first

    # its settings key its staging: another reasoning setting recomputes it alone
    changed = _config(sample_root, out, module_configs={"reasoning": ReasoningConfig(frames_per_subtask=1)})
    third = run_annotation(changed, VLM, vlm=ScriptedBackend(plausible_answers))
    assert third.modules_run == {"reasoning": 2} and third.modules_reused == {"plan": 2, "interjections": 2}

    # switched off (--reasoning.enabled=false): it does not run, and the plan module may write plan rows again
    off = run_annotation(_config(sample_root, tmp_path / "off", plan=PlanConfig(n_task_rephrasings=0),
                                 module_configs={"reasoning": ReasoningConfig(enabled=False)}),
                         VLM, vlm=ScriptedBackend(plausible_answers))
    assert "reasoning" not in off.modules_run and off.validation.ok
    assert not any("Why now:" in c for plans in _plans(tmp_path / "off").values() for c in plans.values())


def _cli(args: list[str], **env: str) -> subprocess.CompletedProcess:
    environ = {**h.cli_env(**env), "PYTHONPATH": os.pathsep.join([str(REPO), str(EXAMPLES)])}
    return subprocess.run([sys.executable, "-m", "lerobot_keyframes.cli", "annotate", *args], env=environ,
                          capture_output=True, text=True, timeout=300, cwd=REPO)


def _argv(root: Path, out: Path, api_base: str, *extra: str) -> list[str]:
    return [f"--root={root}", f"--out={out}", "--vlm.backend=openai", "--vlm.model_id=fake-model",
            f"--vlm.api_base={api_base}", "--vlm.max_retries=0", "--plan.emit_plan=false",
            "--plan.n_task_rephrasings=0", "--plan.min_subtask_seconds=0.3", "--interjections.interjection_min_t=0.1",
            "--vqa.enabled=false", f"--modules={SPEC}", "--reasoning.frames_per_subtask=1", *extra]


def test_command_line_runs_a_module_of_ones_own_and_resumes_after_kill_9(sample_root: Path, tmp_path: Path) -> None:
    skip = ("meta/annotation_provenance.json",)
    with FakeOpenAIServer(plausible=True) as server:
        ref = _cli(_argv(sample_root, tmp_path / "ref", server.api_base))
        assert ref.returncode == 0, ref.stderr[-3000:]
        assert "reasoning 2 episodes" in ref.stdout, ref.stdout
        assert any("Why now:" in c for plans in _plans(tmp_path / "ref").values() for c in plans.values())
        again = _cli(_argv(sample_root, tmp_path / "ref", server.api_base))
        assert again.returncode == 0 and "reasoning 2 episodes (2 from staging)" in again.stdout, again.stdout
        # killed at the 5th staged module (plan and interjections of both episodes are staged, a reasoning may be)
        killed = _cli(_argv(sample_root, tmp_path / "out", server.api_base), **{CRASH: "staging.write:5"})
        assert killed.returncode == -9, killed.stderr[-3000:]
        resumed = _cli(_argv(sample_root, tmp_path / "out", server.api_base))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "from staging" in resumed.stdout, resumed.stdout
    assert h.file_hashes(tmp_path / "out", skip) == h.file_hashes(tmp_path / "ref", skip)


def test_module_flags_exist_once_modules_names_the_module(tmp_path: Path) -> None:
    from lerobot_keyframes.cli import annotate_configs_from_args, parse

    args, _ = parse(["annotate", "--root=x", f"--modules={SPEC}", "--reasoning.frames_per_subtask=4",
                     "--reasoning.enabled=false"])
    config, _ = annotate_configs_from_args(args)
    assert config.modules == (SPEC,)
    assert config.module_config("reasoning") == ReasoningConfig(enabled=False, frames_per_subtask=4)
    file = tmp_path / "run.yaml"  # a --config_path file may name the modules and their settings too
    file.write_text(f"modules: [{SPEC}]\nreasoning:\n  max_chars: 80\nplan:\n  emit_plan: false\n")
    args, _ = parse(["annotate", "--root=x", f"--config_path={file}"])
    config, _ = annotate_configs_from_args(args)
    assert config.module_config("reasoning") == ReasoningConfig(max_chars=80) and not config.plan.emit_plan
    with pytest.raises(SystemExit):  # without --modules there is no --reasoning.* flag
        parse(["annotate", "--root=x", "--reasoning.frames_per_subtask=4"])
    bad = subprocess.run([sys.executable, "-m", "lerobot_keyframes.cli", "annotate", "--root=x",
                          "--modules=no_such_package.mod:Thing"], capture_output=True, text=True,
                         env=h.cli_env(), timeout=120, cwd=REPO)
    assert bad.returncode == 2, bad.stderr  # one line first, then the usage
    assert bad.stderr.startswith("lerobot-keyframes annotate: error: --modules=no_such_package.mod:Thing: cannot "
                                 "import no_such_package.mod"), bad.stderr


# -- refused before any work ---------------------------------------------------------------------------
@dataclass(frozen=True)
class NoConfig:
    enabled: bool = True


def _module(name: str = "extra", **attrs: Any) -> type[Module]:
    """A module class made here (given as a class: not importable by name, used as it is in this process)."""

    async def run(self: Module, ctx: Any, upstream: Mapping[str, Any]) -> list[LanguageRow]:
        return [LanguageRow(*row, timestamp=ctx.frame_time(0)) for row in attrs.get("rows", ())]

    body = {"name": name, "styles": frozenset({"motion"}), "config_class": NoConfig, "run": run,
            "asks_model": False, **{k: v for k, v in attrs.items() if k != "rows"}}
    made = type(f"M_{name}_{len(_MADE)}", (Module,), body)
    _MADE.append(made)
    return made


_MADE: list[type] = []


REFUSED = {
    "clash": ((ReasoningModule,), {}, "modules 'plan' and 'reasoning' both write 'plan' rows"),
    "twin": ((_module("plan"),), {"plan": PlanConfig(emit_plan=False)}, "two modules are named 'plan'"),
    "unknown requirement": ((_module(requires=("nope",)),), {}, "requires ['nope']"),
    "cycle": ((_module("a", requires=("b",)), _module("b", uses=("a",))), {}, "in a cycle"),
    "unknown style": ((_module(styles=frozenset({"thought"})),), {}, "lerobot does not know"),
    "flag group": ((_module("vlm"),), {}, "taken by the run's own settings"),
    "no entry point": (("no_such_entry_point",), {}, "no such module"),
    "not a module": (("json:dumps",), {}, "is not a subclass"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_broken_set_of_modules_is_refused_in_one_line_before_any_work(case: str, sample_root: Path,
                                                                        tmp_path: Path) -> None:
    modules, plan, message = REFUSED[case]
    backend = ScriptedBackend(plausible_answers)
    config = AnnotateConfig(root=sample_root, out=tmp_path / "out", modules=modules,
                            plan=plan.get("plan", PlanConfig()))
    with pytest.raises(ModuleError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")) as err:
        run_annotation(config, VLM, vlm=backend)
    assert "\n" not in str(err.value)
    assert backend.calls == 0 and not (tmp_path / "out").exists() and not (tmp_path / "out.staging").exists()


def test_rows_a_module_may_not_write_are_named(sample_root: Path, tmp_path: Path) -> None:
    only = {"plan": PlanConfig(enabled=False), "interjections": InterjectionsConfig(enabled=False),
            "vqa": VqaConfig(enabled=False), "quality": QualityConfig(enabled=False)}
    # a style it does not declare: the episode fails, naming module, style and time
    stray = _module(rows=[("assistant", "I remember", "memory")])
    result = run_annotation(AnnotateConfig(root=sample_root, out=tmp_path / "a", modules=(stray,), **only), VLM)
    assert set(result.failures) == {0, 1}
    assert "module extra: a row of style 'memory' at 0.0 s, which the module does not declare" in result.failures[0]
    # a declared style, but a row lerobot's validator refuses (a motion row is the assistant's): named, not written
    wrong = _module(rows=[("user", "move", "motion")])
    result = run_annotation(AnnotateConfig(root=sample_root, out=tmp_path / "b", modules=(wrong,), **only), VLM)
    assert not result.validation.ok and not (tmp_path / "b").exists()
    assert "motion" in result.validation.format() and "episode 0" in result.validation.format()


def test_an_installed_module_is_found_by_its_entry_point_name(tmp_path: Path) -> None:
    from lerobot_keyframes.annotate.modules.registry import ENTRY_POINT_GROUP, load_modules

    dist = tmp_path / "reasoning_plugin-1.0.dist-info"  # what `pip install` of a package declaring it leaves
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: reasoning-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nreasoning = {SPEC}\n")
    sys.path.insert(0, str(tmp_path))
    try:
        modules = load_modules(("reasoning",))
    finally:
        sys.path.remove(str(tmp_path))
    assert [m.name for m in modules] == ["plan", "interjections", "vqa", "motion", "reasoning"]
    assert type(modules[-1]) is ReasoningModule


# -- staging made before the module interface resumes ----------------------------------------------------
def test_builtin_staging_keys_are_those_of_the_release_before_the_module_interface() -> None:
    """The keys as the previous release computed them, module by module: its staging directories resume."""
    from lerobot_keyframes.annotate.config import MotionConfig, config_hash
    from lerobot_keyframes.annotate.modules.prompting import load_prompt
    from lerobot_keyframes.annotate.run.keys import model_identity, module_keys, source_identity

    def hashes(*names: str) -> dict[str, str]:
        return {n: load_prompt(n).sha for n in names}

    for config in (AnnotateConfig(repo_id="user/ds"),
                   AnnotateConfig(root=Path("/data/ds"), seed=3, plan=PlanConfig(emit_memory=False),
                                  motion=MotionConfig(enabled=True, signal="action", gripper_index=2))):
        for vlm in (None, VlmConfig(backend="openai", model_id="m", temperature=0.3)):
            identity, source = model_identity(vlm), source_identity(config)
            plan = config_hash("plan", config.plan, identity, hashes(
                "plan_describe", "plan_segment", "plan_task_from_video", "plan_task_aug", "plan_task_aug_axes",
                "plan_relabel", "plan_memory"), config.seed, source, (config.motion.signal, config.motion.gripper_index))
            assert module_keys(config, vlm) == {
                "plan": plan,
                "interjections": config_hash("interjections", config.interjections, identity,
                                             hashes("interjection_ack", "interjection_cue"), config.seed, plan),
                "vqa": config_hash("vqa", config.vqa, identity, hashes("vqa"), config.seed, plan),
                "motion": config_hash("motion", config.motion, source),
            }


def test_staged_files_keep_the_format_of_the_release_before(sample_root: Path, tmp_path: Path) -> None:
    """Row lines are lerobot's row fields (+ the VQA answer's question_type), the plan's info its task, spans, camera
    and grounding; an entry rewritten by hand in that format is reused as it is."""
    from lerobot_keyframes.annotate.modules import PlanModule

    config = AnnotateConfig(root=sample_root, out=tmp_path / "out", only_episodes=(0,),
                            plan=PlanConfig(n_task_rephrasings=0, min_subtask_seconds=0.3),
                            interjections=InterjectionsConfig(interjection_min_t=0.1), vqa=VqaConfig(vqa_emission_hz=0.5))
    result = run_annotation(config, VLM, vlm=ScriptedBackend(plausible_answers))
    assert result.validation.ok
    episode = result.staging_dir / "episode-000000"
    fields = {"role", "content", "style", "timestamp", "camera", "tool_calls"}
    for module in ("plan", "interjections", "vqa"):
        header, *rows = [json.loads(line) for line in (episode / f"{module}.jsonl").read_text().splitlines()]
        assert set(header) == {"version", "episode_index", "module", "key", "inputs", "rows", "info"}
        for row in rows:
            extra = {"question_type"} if row["style"] == "vqa" and row["role"] == "assistant" else set()
            assert set(row) == fields | extra, (module, row)
    info = json.loads((episode / "plan.jsonl").read_text().splitlines()[0])["info"]
    assert set(info) == {"task", "spans", "camera", "grounding"}
    assert set(info["spans"][0]) == {"text", "start", "end", "start_index", "end_index"}
    assert PlanModule().save_result(PlanModule().load_result(info)) == info
    # a staged plan written by the release before (same key, same format) is what interjections build on
    path = episode / "plan.jsonl"
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    header["info"]["spans"][0]["text"] = "an earlier label"
    path.write_text("\n".join([json.dumps(header, sort_keys=True), *lines[1:]]) + "\n")
    (episode / "interjections.jsonl").unlink()
    seen: list[str] = []

    def responder(conversation: Any, schema: Any) -> Any:
        seen.append(prompt_text(conversation))
        return plausible_answers(conversation, schema)

    again = run_annotation(config, VLM, vlm=ScriptedBackend(responder))
    assert again.modules_reused["plan"] == 1 and again.modules_run == {"interjections": 1}
    assert any("an earlier label" in text for text in seen)


def test_the_readme_module_runs_as_written(tmp_path: Path) -> None:
    """README "Write your own module": the snippet runs as written (tiny offline model), its module's rows written."""
    import re

    block = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)[3]
    assert "class Why(Module)" in block
    proc = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=900, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "why 1 episode" in proc.stdout and "validation: 1 episode(s) checked, 0 error(s)" in proc.stdout
    plans = _plans(tmp_path / "why-annotated")
    assert any("\nWhy: " in content for content in plans[0].values()), plans


def test_ray_stages_run_a_module_of_ones_own_like_the_local_engine(sample_root: Path, tmp_path: Path) -> None:
    """The Ray engine's two stages (called in-process, with the plan as an actor unpickles it): the CPU stage
    prefetches what the modules declare up front, the VLM stage runs a module of one's own and stages it exactly
    as the local engine does."""
    import pickle

    from lerobot_keyframes.annotate.executors.ray import AnnotateEpisodes, decode_batch
    from lerobot_keyframes.annotate.run.prepare import prepare_run

    config = _config(sample_root, tmp_path / "out", module_configs={"reasoning": ReasoningConfig(frames_per_subtask=1)})
    shipped = pickle.loads(pickle.dumps(config))  # by name: `reasoning_module:ReasoningModule` and its config
    assert shipped == config and shipped.modules == (SPEC,)
    run = prepare_run(shipped, VLM, check_backend=False)
    try:
        plan = pickle.loads(pickle.dumps(run.plan))  # as an actor unpickles it: its modules rebuilt from the config
        assert plan.modules.enabled_names == ["plan", "interjections", "reasoning"] and plan.keys == run.plan.keys
        decoded = decode_batch({"episode": [pickle.dumps(r) for r in run.rows]}, plan, VLM)
        stage = AnnotateEpisodes(plan, VLM, lambda: ScriptedBackend(plausible_answers))
        outcomes = [pickle.loads(b) for b in stage(decoded)["outcome"]]
    finally:
        run.lock.release()
    assert [o.error for o in outcomes] == [None, None]
    assert all([s.module for s in o.staged] == ["plan", "interjections", "reasoning"] for o in outcomes)
    run_annotation(_config(sample_root, tmp_path / "local",
                           module_configs={"reasoning": ReasoningConfig(frames_per_subtask=1)}),
                   VLM, vlm=ScriptedBackend(plausible_answers))
    for path in sorted((tmp_path / "local.staging").rglob("*.jsonl")):
        assert (run.staging.dir / path.relative_to(tmp_path / "local.staging")).read_text() == path.read_text()
