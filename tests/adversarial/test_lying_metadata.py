"""Metadata that lies about the dataset: counts in info.json, task texts, task indices.

Every case used to be accepted: `annotate` copied a wrong `total_episodes` into its output and `validate`
passed it; an episode's task text that `meta/tasks.parquet` does not define (or a `tasks` column holding a
string, whose first character became the task) went into the prompts. Now the read refuses them before any
decode or model call, naming the file, the episode and the field; `info` lists them.

The tiny dataset has 2 episodes (31 + 32 = 63 frames) of 2 tasks.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from adversarial_helpers import model_flags, one_error_line, tree_hash

EPISODES = "meta/episodes/chunk-000/file-000.parquet"


def _set_info(root: Path, **fields: object) -> None:
    path = root / "meta/info.json"
    info = json.loads(path.read_text())
    info.update(fields)
    path.write_text(json.dumps(info, indent=2))


def _set_tasks_column(root: Path, values: pa.Array) -> None:
    table = pq.read_table(root / EPISODES)
    pq.write_table(table.set_column(table.column_names.index("tasks"), "tasks", values), root / EPISODES)


def test_annotate_refuses_a_larger_total_episodes_and_writes_nothing(tiny: Path, tmp_path: Path, cli,
                                                                       model_server) -> None:
    _set_info(tiny, total_episodes=5)
    before = tree_hash(tiny)
    out = tmp_path / "out"
    rc, _, err = cli("annotate", f"--root={tiny}", f"--out={out}", *model_flags(model_server.api_base))
    assert rc == 2
    line = one_error_line(err)
    assert "meta/info.json" in line and "total_episodes=5" in line and "lists 2 episode(s)" in line
    assert model_server.stats.requests == 0
    assert tree_hash(tiny) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no output, staging or lock file


@pytest.mark.parametrize("field, value, says", [
    ("total_episodes", 5, "lists 2 episode(s)"),
    ("total_episodes", 1, "lists 2 episode(s)"),
    ("total_frames", 9999, "add up to 63 frames"),
    ("total_tasks", 7, "defines 2 task(s)"),
    ("total_episodes", "2", "lists 2 episode(s)"),  # a string is not a count
])
def test_validate_fails_on_a_count_that_lies(tiny: Path, cli, field: str, value: object, says: str) -> None:
    _set_info(tiny, **{field: value})
    rc, _, err = cli("validate", tiny, "--require_subtasks=false")
    assert rc == 2
    line = one_error_line(err)
    assert str(tiny / "meta/info.json") in line and f"{field}={value!r}" in line and says in line


def test_info_lists_what_lies_without_refusing_to_show_the_rest(tiny: Path, cli) -> None:
    _set_info(tiny, total_episodes=5, total_frames=64)
    rc, out, _ = cli("info", tiny, "--json=true")
    assert rc == 0
    problems = json.loads(out)["problems"]
    assert len(problems) == 2 and "total_episodes=5" in problems[0] and "total_frames=64" in problems[1]


def test_a_task_text_absent_from_tasks_parquet_is_refused(tiny: Path, tmp_path: Path, cli) -> None:
    table = pq.read_table(tiny / EPISODES)
    _set_tasks_column(tiny, pa.array([table["tasks"][0].as_py(), ["a task nobody defined"]], table["tasks"].type))
    rc, _, err = cli("keyframes", tiny, "--out", tmp_path / "kf", "--policy", "uniform:2", "--use_cache", "false")
    assert rc == 2
    line = one_error_line(err)
    assert f"{tiny / EPISODES}: episode 1 field tasks holds 'a task nobody defined'" in line
    assert "meta/tasks.parquet" in line
    assert not (tmp_path / "kf").exists()


def test_a_tasks_column_of_strings_is_refused_not_cut_to_its_first_letter(tiny: Path) -> None:
    from lerobot_keyframes.dataset import load_episodes
    from lerobot_keyframes.dataset.errors import DatasetFormatError

    _set_tasks_column(tiny, pa.array(["pick up the cube", "place it"]))
    with pytest.raises(DatasetFormatError, match=r"meta/episodes: field tasks is string, expected a list of task"):
        load_episodes(tiny)


def test_a_task_index_defined_twice_is_refused(tiny: Path) -> None:
    from lerobot_keyframes.dataset import load_episodes
    from lerobot_keyframes.dataset.errors import DatasetFormatError

    path = tiny / "meta/tasks.parquet"
    table = pq.read_table(path)
    rows = table.to_pylist()
    doubled = pa.Table.from_pylist(rows + [{**rows[0], "task": "another text"}], schema=table.schema)
    pq.write_table(doubled, path)
    with pytest.raises(DatasetFormatError, match=r"tasks.parquet: task_index 0 appears twice"):
        load_episodes(tiny)
