"""Files a command reads that are not what they claim: every one names itself and the field, exit 2, no traceback.

- `eval` references: a duplicated episode was silently dropped (the last one won), `"episode_index": "zero"`
  gave `invalid literal for int()` with no file named, 1.5 became episode 1, a deeply nested file raised
  RecursionError, a `subtasks`/`phases`/`boundaries` of the wrong type a TypeError or AttributeError;
- `merge --run_file` / `job --resubmit_failed`: non-JSON said `Expecting value: line 1 column 1 (char 0)`
  (no file), wrong types raised TypeError.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from adversarial_helpers import one_error_line

PRED = {"episodes": [{"episode_index": 0, "boundaries": [0.3]}]}


def _eval(cli, tmp_path: Path, reference: object | str) -> str:
    pred, ref = tmp_path / "pred.json", tmp_path / "ref.json"
    pred.write_text(json.dumps(PRED))
    ref.write_text(reference if isinstance(reference, str) else json.dumps(reference))
    rc, out, err = cli("eval", pred, "--reference", ref)
    assert rc == 2 and out == ""
    line = one_error_line(err)
    assert str(ref) in line
    return line


def test_eval_refuses_a_duplicated_reference_episode(tmp_path: Path, cli) -> None:
    line = _eval(cli, tmp_path, {"episodes": [{"episode_index": 0, "boundaries": [0.3]},
                                              {"episode_index": 0, "boundaries": [0.6]}]})
    assert "episode 0 appears twice (episodes[0] and episodes[1])" in line


@pytest.mark.parametrize("empty", [{"subtasks": []}, {"phases": {}}])
def test_eval_refuses_a_reference_episode_without_spans(tmp_path: Path, cli, empty: dict) -> None:
    line = _eval(cli, tmp_path, {"episodes": [{"episode_index": 0, **empty}]})  # it scored every prediction 1.0
    assert "episode 0: no subtasks or phases" in line


@pytest.mark.parametrize("index", ["zero", 1.5, -3, True, None])
def test_eval_refuses_an_episode_index_that_is_not_an_integer(tmp_path: Path, cli, index: object) -> None:
    line = _eval(cli, tmp_path, {"episodes": [{"episode_index": index, "boundaries": [0.3]}]})
    assert f"episodes[0]: episode_index must be an integer >= 0, got {index!r}" in line


def test_eval_accepts_an_integral_float_episode_index(tmp_path: Path) -> None:
    from lerobot_keyframes.evaluate import load_labels

    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps({"episodes": [{"episode_index": 2.0, "boundaries": [0.3]}]}))
    assert list(load_labels(ref).episodes) == [2]


@pytest.mark.parametrize("entry, names", [
    ({"subtasks": 5}, "episode 0, subtasks: expected a list"),
    ({"subtasks": [3]}, "episode 0, subtasks[0]: expected an object"),
    ({"subtasks": [{"text": 7, "start": 0.0}]}, "episode 0, subtasks[0].text: expected a string"),
    ({"phases": [1, 2]}, "episode 0, phases: expected an object"),
    ({"phases": {"reach": 0.5}}, "episode 0, phase 'reach': expected an object"),
    ({"boundaries": 0.5}, "episode 0, boundaries: expected a list"),
    ({"boundaries": [0.5], "duration": "long"}, "episode 0, duration: expected a number"),
])
def test_eval_names_the_field_of_the_wrong_type(tmp_path: Path, cli, entry: dict, names: str) -> None:
    assert names in _eval(cli, tmp_path, {"episodes": [{"episode_index": 0, **entry}]})


def test_eval_refuses_a_non_numeric_fps_and_deep_nesting(tmp_path: Path, cli) -> None:
    assert "fps must be a number > 0, got 'thirty'" in _eval(
        cli, tmp_path, {"fps": "thirty", "episodes": [{"episode_index": 0, "boundaries": [0.5]}]})
    assert "nested too deeply to read" in _eval(cli, tmp_path, "[" * 100_000 + "]" * 100_000)
    nested = {"episodes": [{"episode_index": 0, "boundaries": [0.5], "note": json.loads("[" * 40 + "]" * 40)}]}
    assert "nested deeper than 16 levels" in _eval(cli, tmp_path, nested)


def _run_record() -> dict:
    return {"run_id": "r1", "source_repo_id": "user/src", "work_repo_id": "user/work", "target_repo_id": None,
            "annotate_args": ["--root=x"], "config": {},
            "shards": [{"job_id": "j", "url": "u", "namespace": "user", "run_id": "r1", "shard": 0,
                        "num_shards": 1, "branch": "b0", "episodes": [0, 1]}]}


def test_a_run_record_round_trips(tmp_path: Path) -> None:
    from lerobot_keyframes.annotate.executors.jobs import ShardedRun

    path = tmp_path / "run.json"
    path.write_text(json.dumps(_run_record()))
    run = ShardedRun.load(path)
    assert run.shards[0].episodes == (0, 1) and run.branches == ["b0"]
    run.save(tmp_path / "again.json")
    assert ShardedRun.load(tmp_path / "again.json") == run


@pytest.mark.parametrize("content, names", [
    ("this is not json {", "not valid JSON (Expecting value"),
    (json.dumps([1, 2]), "expected a JSON object (a run record), got list"),
    (json.dumps({**_run_record(), "run_id": 1}), "field run_id must be str, got int"),
    (json.dumps({**_run_record(), "shards": "many"}), "field shards must be a list, got str"),
    (json.dumps({**_run_record(), "shards": [{**_run_record()["shards"][0], "bogus": 1}]}),
     "shards[0]: unknown field(s) ['bogus']"),
    (json.dumps({**_run_record(), "shards": [{**_run_record()["shards"][0], "episodes": ["0"]}]}),
     "shards[0]: field episodes must be a list of integers"),
    (json.dumps({k: v for k, v in _run_record().items() if k != "work_repo_id"}), "field work_repo_id is missing"),
])
def test_merge_and_resubmit_name_the_run_file_and_field(tmp_path: Path, cli, content: str, names: str) -> None:
    run_file = tmp_path / "run.json"
    run_file.write_text(content)
    for argv in (["merge", "--run_file", run_file, "--out", tmp_path / "merged"],
                 ["job", "--resubmit_failed", run_file]):
        rc, _, err = cli(*argv)
        assert rc == 2
        line = one_error_line(err)
        assert str(run_file) in line and names in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


@pytest.mark.parametrize("prompt", ["{keyframes}{task.__class__}", "{keyframes.__class__.__init__.__globals__}",
                                    "{keyframes}{cameras[0]}"])
def test_a_prompt_field_that_reaches_into_python_objects_is_refused(tiny_root, tmp_path: Path, cli,
                                                                   prompt: str) -> None:
    out = tmp_path / "kf"
    rc, _, err = cli("keyframes", tiny_root, "--out", out, "--policy", "uniform:2", "--prompt", prompt)
    assert rc == 2
    assert "reach into attributes or items" in one_error_line(err)
    assert not out.exists()
