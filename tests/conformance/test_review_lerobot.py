"""A dataset written by `review-apply` (rows rejected, a label edited, a boundary moved, an episode rejected)
loads in lerobot 0.6.1 and resolves the reviewed subtasks on every frame.

Runs only in the lerobot venv (scripts/lerobot_tier.sh); elsewhere the conformance conftest skips it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from lerobot_keyframes.language import (
    LANGUAGE_EVENTS,
    LANGUAGE_PERSISTENT,
    read_dataset_annotations,
    write_language,
)
from lerobot_keyframes.language.schema import decode_stored_rows
from lerobot_keyframes.language.synthetic import synthetic_annotations
from lerobot_keyframes.review import apply_decisions
from lerobot_keyframes.review.identity import annotations_digest, dataset_identity
from lerobot_keyframes.review.model import row_ids, row_record
from lerobot_keyframes.testing.sample import make_sample_dataset


def _scalar(v):
    return v.item() if hasattr(v, "item") else v


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("review_lerobot")
    src = make_sample_dataset(base / "src", episodes=3, episode_seconds=2.0, width=160, height=120,
                              max_video_file_mb=0.02, episodes_per_data_file=2)
    annotated = base / "annotated"
    write_language(src, synthetic_annotations(src, rotate_cameras=True), out=annotated)
    anns, times = read_dataset_annotations(annotated)
    episodes = {}
    for e in (0, 1):
        rows = dict(row_ids(anns[e]))
        subs = sorted((k for k, r in rows.items() if r.style == "subtask"), key=lambda k: rows[k].timestamp)
        answer = next(k for k, r in rows.items() if r.style == "vqa" and r.role == "assistant")
        frame = int(np.nonzero(times[e] == np.float32(rows[subs[2]].timestamp))[0][0]) + 2
        decided = {subs[1]: {"content": f"reviewed step of episode {e}"}, subs[2]: {"frame": frame},
                   answer: {"status": "rejected"}}
        episodes[str(e)] = {"status": "approved", "annotations": annotations_digest(anns[e], times[e]),
                            "rows": {k: {**d, "was": row_record(rows[k])} for k, d in decided.items()}}
    episodes["2"] = {"status": "rejected", "rows": {}, "annotations": annotations_digest(anns[2], times[2])}
    info = json.loads((annotated / "meta" / "info.json").read_text())
    decisions = {"format": "lerobot_keyframes.review.decisions", "version": 1, "dataset_id": dataset_identity(info),
                 "episodes": episodes}  # as the review site's pages stamp them
    out = base / "reviewed"
    result = apply_decisions(annotated, decisions, out)
    assert result.report.ok and result.episodes_rejected == (2,)
    return out


def test_lerobot_loads_the_reviewed_dataset(reviewed):
    from lerobot.datasets import language_render as lr
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/reviewed", root=reviewed)
    stored, times = read_dataset_annotations(reviewed)
    assert stored[2].empty and not stored[0].empty
    seen = set()
    for i in range(len(ds)):
        item = ds[i]
        ep, t = int(item["episode_index"]), float(_scalar(item["timestamp"]))
        p, e = item[LANGUAGE_PERSISTENT], item[LANGUAGE_EVENTS]
        assert decode_stored_rows(p) == sorted(
            stored[ep].persistent, key=lambda r: (r.timestamp, r.style or "", r.role, r.camera or "", r.content or ""))
        assert sorted(map(repr, decode_stored_rows(e, timestamp=t))) == sorted(
            repr(r) for r in stored[ep].events if r.timestamp == t)
        if ep == 2:
            assert not p and not e
            continue
        active = lr.active_at(t, persistent=p, style="subtask")
        expected = max((r for r in stored[ep].persistent if r.style == "subtask" and r.timestamp <= t),
                       key=lambda r: r.timestamp)
        assert active is not None and active["content"] == expected.content
        seen.add(active["content"])
    assert {"reviewed step of episode 0", "reviewed step of episode 1"} <= seen
