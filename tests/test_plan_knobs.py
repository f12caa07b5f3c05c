"""lerobot-annotate 0.6.1's plan knobs, applied: contact sheet JPEG quality, the seeded relabel pass, 5-axis
task augmentation. Real decoding and the real pipeline; answers from a scripted backend or a real HTTP server."""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lerobot_keyframes.annotate import run_annotation
from lerobot_keyframes.annotate.config import (
    UNAPPLIED_SETTINGS,
    AnnotateConfig,
    InterjectionsConfig,
    PlanConfig,
    QualityConfig,
    TaskAugAxesConfig,
    VqaConfig,
    unapplied_settings,
)
from lerobot_keyframes.language import read_dataset_annotations
from lerobot_keyframes.testing.fake_openai import FakeOpenAIServer, _schema_of
from lerobot_keyframes.testing.scripted import ScriptedBackend, plausible_answers, prompt_text
from lerobot_keyframes.vlm.config import VlmConfig

VLM = VlmConfig(backend="openai", model_id="scripted-qwen2.5-vl")
SEEDS = ("reach for the cube", "grasp the cube", "put the cube down")
GAP, TILE = 4, 224  # contact_sheets' gap and our default tile width


def _config(root: Path, out: Path, **plan: Any) -> AnnotateConfig:
    """The plan module alone (and deterministic boundaries: no snapping to robot events)."""
    return AnnotateConfig(root=root, out=out, quality=QualityConfig(enabled=False), vqa=VqaConfig(enabled=False),
                          interjections=InterjectionsConfig(enabled=False),
                          plan=PlanConfig(min_subtask_seconds=0.3, snap_to_signals=False, **plan))


class Recording(ScriptedBackend):
    """A scripted backend that also records the size of every batch of requests it is given."""

    def __init__(self, responder: Any) -> None:
        super().__init__(responder)
        self.batches: list[list[str]] = []  # per agenerate call: the answer keys its schemas ask for

    async def agenerate(self, conversations, schemas=None, *, raise_errors: bool = True):
        self.batches.append([",".join((s or {}).get("properties", {})) for s in schemas or []])
        return await super().agenerate(conversations, schemas, raise_errors=raise_errors)


def _images(conversation: list[dict[str, Any]]) -> list[Any]:
    return [b["image"] for m in conversation for b in m["content"] if isinstance(b, dict) and b.get("type") == "image"]


def _rows(out: Path, style: str) -> dict[int, list[Any]]:
    anns = read_dataset_annotations(out)[0]
    return {ep: sorted((r for r in a.persistent if r.style == style), key=lambda r: (r.timestamp, r.content))
            for ep, a in anns.items()}


def test_seeded_relabel_asks_once_per_span_and_its_labels_replace_the_seeds(sample_root: Path,
                                                                            tmp_path: Path) -> None:
    relabels: list[tuple[str, list[Any]]] = []
    memories: list[str] = []
    seeded = functools.partial(plausible_answers, subtasks=SEEDS)

    def responder(conversation: list[dict[str, Any]], schema: dict[str, Any] | None) -> Any:
        text = prompt_text(conversation)
        if "label" in (schema or {}).get("properties", {}):
            relabels.append((text, _images(conversation)))
            k = re.search(r"this is segment (\d+) of (\d+)", text).group(1)
            return {"label": f"Relabelled step {k}."}
        if "memory" in (schema or {}).get("properties", {}):
            memories.append(text)
        return seeded(conversation, schema)

    first = Recording(seeded)
    run_annotation(_config(sample_root, tmp_path / "seed"), VLM, vlm=first)
    assert not any("label" in keys for batch in first.batches for keys in batch)  # off by default: no pass
    seeds = _rows(tmp_path / "seed", "subtask")
    assert {ep: [r.content for r in rows] for ep, rows in seeds.items()} == {0: list(SEEDS), 1: list(SEEDS)}

    backend = Recording(responder)
    result = run_annotation(_config(sample_root, tmp_path / "out", subtask_seeded_relabel=True,
                                    subtask_relabel_frames=3), VLM, vlm=backend)
    assert result.failures == {} and result.validation.ok, result.validation.format()
    subtasks = _rows(tmp_path / "out", "subtask")
    # exactly one more call per span, and the relabel pass's labels replace the seeds; boundaries stay
    assert len(relabels) == sum(len(rows) for rows in subtasks.values()) == 6
    assert backend.calls == first.calls + 6
    for ep, rows in subtasks.items():
        assert [r.content for r in rows] == ["relabelled step 1", "relabelled step 2", "relabelled step 3"]
        assert [r.timestamp for r in rows] == [r.timestamp for r in seeds[ep]]
    plans = _rows(tmp_path / "out", "plan")
    assert plans[0][0].content == "1. relabelled step 1\n2. relabelled step 2\n3. relabelled step 3"
    assert any('"relabelled step 1"' in text for text in memories)  # memory is built from the new labels
    # one batch per episode carries all of its relabel requests (they are asked at once)
    assert sorted(len(b) for b in backend.batches if b and all(k == "label" for k in b)) == [3, 3]
    # the seed is the prior; the first and last span see one neighbour, the middle one both
    for text, images in relabels:
        index = int(re.search(r"segment (\d+) of 3", text).group(1))
        assert f'Its current label is: "{SEEDS[index - 1]}"' in text
        assert len(images) == (3 if index == 2 else 2)
        # --plan.subtask_relabel_frames=3: three tiles per span sheet (a span here has ~20 frames)
        assert {im.width for im in images} == {3 * TILE + 4 * GAP}


def test_task_aug_axes_replace_the_rephrasings_with_lerobots_counts(sample_root: Path, tmp_path: Path) -> None:
    axes = TaskAugAxesConfig(enabled=True, synonym_paraphrase=2, omit_arm=1, omit_orientation=0,
                             omit_grasp_method=1, combined_omissions=1)
    asked: list[tuple[str, dict[str, Any]]] = []

    def responder(conversation: list[dict[str, Any]], schema: dict[str, Any] | None) -> Any:
        properties = (schema or {}).get("properties", {})
        assert "rephrasings" not in properties  # the axes replace n_task_rephrasings
        if "omit_arm" in properties:
            text = prompt_text(conversation)
            task = re.search(r'given this task: "(.*)"', text).group(1)
            asked.append((text, schema))
            return {"synonym_paraphrase": ["Could you move that cube?", task],  # the task itself: dropped
                    "omit_arm": ["could you move that cube?"],  # a repeat of another axis: dropped
                    "omit_orientation": [], "omit_grasp_method": ["Move the cube without a grip."],
                    "combined_omissions": ["Move it, any way you like."]}
        return plausible_answers(conversation, schema)

    out = tmp_path / "out"
    result = run_annotation(_config(sample_root, out, task_aug_axes=axes, n_task_rephrasings=4), VLM,
                            vlm=ScriptedBackend(responder))
    assert result.failures == {} and result.validation.ok, result.validation.format()
    assert len(asked) == 2  # one call per episode
    text, schema = asked[0]
    maxima = {axis: spec["maxItems"] for axis, spec in schema["properties"].items()}
    assert maxima == {"synonym_paraphrase": 2, "omit_arm": 1, "omit_orientation": 0, "omit_grasp_method": 1,
                      "combined_omissions": 1}
    assert "- omit_arm (1):" in text and "- omit_orientation (0):" in text
    tasks = {re.search(r'given this task: "(.*)"', text).group(1) for text, _ in asked}
    variants = ["Could you move that cube?", "Move the cube without a grip.", "Move it, any way you like."]
    written = set()
    for a in read_dataset_annotations(out)[0].values():  # episodes run at once: match rows to tasks by content
        rows = [r for r in a.persistent if r.style == "task_aug"]
        # as lerobot writes them: the task, then the distinct variants, role user, at the first frame
        contents = sorted(r.content for r in rows)
        assert len(contents) == 4 and set(variants) < set(contents)
        written |= set(contents) - set(variants)
        assert {r.role for r in rows} == {"user"} and {r.timestamp for r in rows} == {min(r.timestamp for r in a.persistent)}
    assert written == tasks


def test_rephrasings_rows_are_the_task_and_n_rephrasings(sample_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_annotation(_config(sample_root, out, n_task_rephrasings=2), VLM, vlm=ScriptedBackend(plausible_answers))
    for rows in _rows(out, "task_aug").values():
        contents = [r.content for r in rows]
        assert len(contents) == 3 and {"move the cube onto the pad", "put the cube on the pad"} < set(contents)
    none = tmp_path / "none"
    run_annotation(_config(sample_root, none, n_task_rephrasings=0), VLM, vlm=ScriptedBackend(plausible_answers))
    assert all(rows == [] for rows in _rows(none, "task_aug").values())


def test_contact_sheet_quality_changes_the_images_and_the_bytes_sent(sample_root: Path, tmp_path: Path) -> None:
    seen: dict[int, dict[str, list[Any]]] = {}  # quality -> segment prompt (one per episode) -> its sheets
    for quality in (10, 95):
        def responder(conversation, schema, quality=quality):
            if "subtasks" in (schema or {}).get("properties", {}):
                seen.setdefault(quality, {})[prompt_text(conversation)] = _images(conversation)
            return plausible_answers(conversation, schema)

        run_annotation(_config(sample_root, tmp_path / f"s{quality}", contact_sheet_quality=quality), VLM,
                       vlm=ScriptedBackend(responder))
    assert len(seen[10]) == 2 and seen[10].keys() == seen[95].keys()
    for prompt, low in seen[10].items():  # the same sheets, other pixels
        high = seen[95][prompt]
        assert [im.size for im in low] == [im.size for im in high]
        assert all(a.tobytes() != b.tobytes() for a, b in zip(low, high))

    sent: dict[int, int] = {}
    for quality in (10, 95):  # the openai backend against a real HTTP server: the image bytes on the wire
        with FakeOpenAIServer(plausible=True) as server:
            vlm = VlmConfig(backend="openai", model_id=server.model, api_base=server.api_base, max_retries=0)
            result = run_annotation(_config(sample_root, tmp_path / f"o{quality}", contact_sheet_quality=quality,
                                            n_task_rephrasings=0), vlm)
            assert result.failures == {}
            urls = [p["image_url"]["url"] for body in server.stats.bodies for m in body["messages"]
                    if isinstance(m["content"], list) for p in m["content"] if p.get("type") == "image_url"]
        assert urls and all(u.startswith("data:image/jpeg;base64,") for u in urls)
        sent[quality] = sum(len(u) for u in urls)
    assert sent[10] < 0.7 * sent[95], sent
    with pytest.raises(ValueError, match="contact_sheet_quality must be a JPEG quality from 1 to 100"):
        AnnotateConfig(root=sample_root, plan=PlanConfig(contact_sheet_quality=0))


def test_every_lerobot_plan_knob_is_applied() -> None:
    assert UNAPPLIED_SETTINGS == ()
    changed = PlanConfig(contact_sheet_quality=50, subtask_seeded_relabel=True, subtask_relabel_frames=7,
                         task_aug_axes=TaskAugAxesConfig(enabled=True, omit_arm=1))
    assert unapplied_settings(AnnotateConfig(root=Path("x"), plan=changed)) == []


def test_a_pasted_lerobot_annotate_command_line_with_the_plan_knobs_runs(sample_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with FakeOpenAIServer(plausible=True) as server:
        proc = subprocess.run(
            [sys.executable, "-m", "lerobot_keyframes.cli", "annotate", f"--root={sample_root}", f"--out={out}",
             "--vlm.backend=openai", f"--vlm.api_base={server.api_base}", f"--vlm.model_id={server.model}",
             "--plan.contact_sheet_quality=70", "--plan.subtask_seeded_relabel=true",
             "--plan.subtask_relabel_frames=4", "--plan.task_aug_axes.enabled=true",
             "--plan.task_aug_axes.synonym_paraphrase=2", "--plan.task_aug_axes.omit_arm=1",
             "--plan.task_aug_axes.omit_orientation=1", "--plan.task_aug_axes.omit_grasp_method=1",
             "--plan.task_aug_axes.combined_omissions=1", "--plan.min_subtask_seconds=0.3",
             "--vqa.enabled=false", "--interjections.enabled=false", "--quality.enabled=false"],
            capture_output=True, text=True, timeout=300)
        schemas = [_schema_of(body) or {} for body in server.stats.bodies]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "not applied" not in proc.stderr and "WARNING" not in proc.stderr, proc.stderr
    keys = [set(s.get("properties", {})) for s in schemas]
    subtasks = _rows(out, "subtask")
    assert sum(k == {"label"} for k in keys) == sum(len(rows) for rows in subtasks.values()) > 0
    assert sum("omit_arm" in k for k in keys) == 2 and not any("rephrasings" in k for k in keys)
    assert all(len(rows) >= 2 for rows in _rows(out, "task_aug").values())  # the task and >= 1 variant
    assert json.loads((out / "meta/annotation_provenance.json").read_text())["episodes"] == 2
