"""Staged results are reused only under everything that produced them; rows come only from current entries."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _b_helpers as h  # noqa: E402

from lerobot_keyframes.annotate import run_annotation  # noqa: E402
from lerobot_keyframes.annotate.config import (  # noqa: E402
    AnnotateConfig,
    InterjectionsConfig,
    PlanConfig,
    VqaConfig,
)
from lerobot_keyframes.testing.scripted import ScriptedBackend, plausible_answers  # noqa: E402
from lerobot_keyframes.vlm.config import VlmConfig  # noqa: E402

VLM_A = VlmConfig(backend="openai", model_id="model-A")
VLM_B = VlmConfig(backend="openai", model_id="model-B")


def _config(root: Path, out: Path, **kw) -> AnnotateConfig:
    kw.setdefault("plan", PlanConfig(n_task_rephrasings=2, min_subtask_seconds=0.3))
    return AnnotateConfig(root=root, out=out, interjections=InterjectionsConfig(interjection_min_t=0.1), **kw)


def _set_task(root: Path, episode: int, text: str) -> None:
    """Edit one episode's task text the way a user would: meta/episodes `tasks` and meta/tasks.parquet."""
    ep_path = next((root / "meta/episodes").rglob("*.parquet"))
    table = pq.read_table(ep_path)
    tasks = table["tasks"].to_pylist()
    old = tasks[episode][0]
    tasks[episode] = [text]
    table = table.set_column(table.column_names.index("tasks"), "tasks", pa.array(tasks, type=table["tasks"].type))
    pq.write_table(table, ep_path)
    t_path = root / "meta/tasks.parquet"
    t = pq.read_table(t_path)
    names = [text if v == old else v for v in t["task"].to_pylist()]
    pq.write_table(t.set_column(t.column_names.index("task"), "task", pa.array(names)), t_path)


def test_edited_task_text_recomputes_that_episode_only(sample_copy: Path, tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    run_annotation(_config(sample_copy, tmp_path / "a", staging_dir=staging), VLM_A,
                   vlm=ScriptedBackend(plausible_answers))
    _set_task(sample_copy, 0, "stack the purple cube on top of the orange plate, slowly")
    assert h.episode_tasks(sample_copy)[0].startswith("stack the purple cube")
    again = run_annotation(_config(sample_copy, tmp_path / "b", staging_dir=staging), VLM_A,
                           vlm=ScriptedBackend(plausible_answers))
    assert again.failures == {}
    # episode 0's prompts carry another task: every module runs again for it; episode 1 is reused
    assert again.modules_run == {"plan": 1, "interjections": 1, "vqa": 1}, again.modules_run
    assert again.modules_reused == {"plan": 1, "interjections": 1, "vqa": 1}


def test_touched_video_recomputes_episodes_in_it(sample_copy: Path, tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    run_annotation(_config(sample_copy, tmp_path / "a", staging_dir=staging), VLM_A,
                   vlm=ScriptedBackend(plausible_answers))
    video = next((sample_copy / "videos").rglob("*.mp4"))
    st = video.stat()
    os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # re-encoded/replaced in place
    again = run_annotation(_config(sample_copy, tmp_path / "b", staging_dir=staging), VLM_A,
                           vlm=ScriptedBackend(plausible_answers))
    assert sum(again.modules_reused.values()) == 0 and sum(again.modules_run.values()) == 6


def test_another_source_in_the_same_out_is_refused_before_any_call(sample_root: Path, tmp_path: Path) -> None:
    from lerobot_keyframes.testing.sample import make_sample_dataset

    other = make_sample_dataset(tmp_path / "other", episodes=2, episode_seconds=2.0, seed=7)
    out = tmp_path / "out"
    run_annotation(_config(sample_root, out), VLM_A, vlm=ScriptedBackend(plausible_answers))
    before = h.file_hashes(out)
    backend = ScriptedBackend(plausible_answers)
    # the provenance names a local source by a hash of its path, never the path itself
    with pytest.raises(FileExistsError, match=rf"{out} is the annotated copy of another source "
                                              rf"\(local:sha256:[0-9a-f]{{16}}\), not of {other}"):
        run_annotation(_config(other, out), VLM_A, vlm=backend)
    assert backend.calls == 0 and h.file_hashes(out) == before
    # another --out, same staging: nothing of the first source's staging is reused
    fresh = run_annotation(_config(other, tmp_path / "out2", staging_dir=tmp_path / "out.staging"), VLM_A,
                           vlm=ScriptedBackend(plausible_answers))
    assert sum(fresh.modules_reused.values()) == 0 and fresh.validation.ok


def test_disabled_module_of_another_model_is_never_written_under_new_provenance(sample_root: Path,
                                                                                 tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    first = run_annotation(_config(sample_root, tmp_path / "a", staging_dir=staging), VLM_A,
                           vlm=ScriptedBackend(plausible_answers))
    assert first.rows_per_style.get("vqa", 0) > 0
    second = run_annotation(_config(sample_root, tmp_path / "b", staging_dir=staging, vqa=VqaConfig(enabled=False)),
                            VLM_B, vlm=ScriptedBackend(plausible_answers))
    assert second.validation.ok
    assert "vqa" not in h.styles(tmp_path / "b")  # model A's VQA rows are not model B's output
    prov = h.provenance(tmp_path / "b")
    assert prov["model_id"] == "model-B" and "vqa" not in prov["modules"]
    assert "vqa" not in second.rows_per_style


def test_staged_entry_from_other_inputs_is_not_read(tmp_path: Path) -> None:
    from lerobot_keyframes.annotate.run.staging import Staging
    from lerobot_keyframes.language.rows import LanguageRow

    rows = [{"role": "assistant", "content": "x", "style": "subtask", "timestamp": 0.0, "camera": None,
             "tool_calls": None}]
    before = json.dumps(rows, sort_keys=True)
    typed = [LanguageRow.from_dict(r) for r in rows]  # staged rows come back as LanguageRow
    Staging(tmp_path, inputs={0: "in-1"}).write(0, "plan", "k", rows)
    assert Staging(tmp_path, inputs={0: "in-1"}).lookup(0, "plan", "k").rows == typed
    assert Staging(tmp_path, inputs={0: "in-2"}).lookup(0, "plan", "k") is None
    assert Staging(tmp_path, inputs={0: "in-2"}).read(0, "plan") is None  # the lead's plan-info read too
    assert Staging(tmp_path, inputs={0: "in-1"}).current_rows(0, {"plan": "k", "vqa": "k"}) == {"plan": typed}
    # a process opening the directory later (a Ray actor) checks the inputs the run saved
    Staging(tmp_path, inputs={0: "in-2"}).save_inputs()
    assert Staging(tmp_path).lookup(0, "plan", "k") is None
    shutil.rmtree(tmp_path)
    assert json.dumps(rows, sort_keys=True) == before  # the caller's rows are untouched by the writes and checks


def test_merge_refuses_shards_staged_under_different_keys(sample_root: Path, tmp_path: Path) -> None:
    from lerobot_keyframes.annotate.run.merge import merge_plan, write_from_staging
    from lerobot_keyframes.annotate.run.staging import Staging
    from lerobot_keyframes.dataset.source import resolve_source

    staging = tmp_path / "merged.staging"
    run_annotation(_config(sample_root, tmp_path / "a", staging_dir=staging), VLM_A,
                   vlm=ScriptedBackend(plausible_answers))
    odd = Staging(staging).read(1, "vqa")
    Staging(staging).write(1, "vqa", "another-key", odd.rows, odd.info)  # one shard ran with other VQA flags
    out = tmp_path / "merged"
    with pytest.raises(ValueError, match=r"module 'vqa' under 2 different keys.*episodes \[1\]"):
        write_from_staging(merge_plan(resolve_source(sample_root), out), staging, [0, 1], {})
    assert not out.exists()
