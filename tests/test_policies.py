"""Keyframe policies: exact float32 frame times, composition, parsing, motion keyframes vs ground truth."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lerobot_keyframes.dataset.records import Episode
from lerobot_keyframes.dataset.signals import episode_signals, read_episode_signals
from lerobot_keyframes.frames.policies import (
    At,
    Cap,
    EveryFrame,
    Fps,
    Motion,
    PolicyUnion,
    Uniform,
    at,
    cap,
    every_frame,
    fps,
    motion,
    parse_policy,
    uniform,
    union,
)
from lerobot_keyframes.utils.timeline import nearest_frame_indices


def _episode(length: int = 180, rate: float = 30.0, jitter: float = 0.0, index: int = 0, **extra):
    """An episode row as load_episodes gives it: float32 timestamps written like lerobot (i / fps)."""
    rng = np.random.default_rng(index)
    ts = (np.arange(length) / rate + rng.uniform(-jitter, jitter, length) * (np.arange(length) > 0)).astype(np.float32)
    return {"episode_index": index, "timestamps": ts.tolist(), "length": length, "fps": rate, **extra}


def _is_subset_exact(values, timestamps) -> bool:
    """Every value is bit-equal to one of the episode's float32 timestamps."""
    pool = {np.float32(t).tobytes() for t in timestamps}
    return all(np.float32(v).tobytes() in pool and float(np.float32(v)) == v for v in values)


# -- simple policies ------------------------------------------------------------------------------------
def test_uniform_spreads_by_frame_and_keeps_first_and_last():
    ep = _episode(181)
    idx = uniform(7).frame_indices(ep)
    assert idx.tolist() == [0, 30, 60, 90, 120, 150, 180]
    assert uniform(1).frame_indices(ep).tolist() == [90]
    assert uniform(500).frame_indices(ep).tolist() == list(range(181))
    with pytest.raises(ValueError, match=r"^uniform: n must be >= 1, got 0$"):
        uniform(0)


def test_times_are_the_episode_float32_values_bit_for_bit():
    ep = _episode(300, rate=29.97, jitter=1e-4)
    for policy in (uniform(9), fps(2.5), at(0.1, 3.337, 9.9), every_frame()):
        times = policy.timestamps(ep).tolist()
        assert times == sorted(times)
        assert _is_subset_exact(times, ep["timestamps"]), policy
        assert policy.timestamps(ep).dtype == np.float32


def test_fps_snaps_to_the_nearest_frame_without_drift():
    ep = _episode(30 * 600 + 1)  # a 10-minute episode: k / hz must not accumulate float error
    times = fps(1).timestamps(ep)
    assert len(times) == 601
    idx = fps(1).frame_indices(ep)
    assert (np.diff(idx) == 30).all()
    assert fps(0.5).frame_indices(_episode(91)).tolist() == [0, 60]
    assert fps(1000).frame_indices(_episode(10)).tolist() == list(range(10))  # never more than every frame


def test_at_snaps_and_rejects_times_outside_the_episode():
    ep = _episode(90, index=7)
    assert at(0.49, 0.51).frame_indices(ep).tolist() == [15]
    assert at([1.0, 0.0]).frame_indices(ep).tolist() == [0, 30]
    assert at(2.98).frame_indices(ep).tolist() == [89]  # within half a frame of the last frame
    with pytest.raises(ValueError, match="episode 7"):
        at(3.5).frame_indices(ep)
    assert at(3.5, tolerance=1.0).frame_indices(ep).tolist() == [89]


def test_snap_ties_go_to_the_earlier_frame():
    ts = np.array([0.0, 1.0, 2.0], dtype=np.float32)
    assert nearest_frame_indices(ts, [0.5, 1.5, -3, 9]).tolist() == [0, 1, 0, 2]


def test_every_frame_and_empty_episode():
    assert every_frame().frame_indices(_episode(5)).tolist() == [0, 1, 2, 3, 4]
    empty = _episode(0)
    for p in (uniform(3), fps(1), every_frame(), motion()):
        assert p.timestamps(empty).tolist() == []


# -- composition and parsing -------------------------------------------------------------------------------
def test_union_and_cap():
    ep = _episode(181)
    u = uniform(3) | at(1.0, 2.0)
    assert isinstance(u, PolicyUnion)
    assert u.frame_indices(ep).tolist() == [0, 30, 60, 90, 180]
    assert (uniform(3) | uniform(3)).frame_indices(ep).tolist() == [0, 90, 180]
    # earlier terms win: all of at(...) first, then uniform frames thinned to the slots left
    capped = cap(at(1.0, 2.0) | uniform(7), 4)
    assert capped.frame_indices(ep).tolist() == [0, 30, 60, 180]
    assert cap(uniform(9), 3).frame_indices(ep).tolist() == [0, 90, 180]
    assert union(union(uniform(2), fps(1)), every_frame()).policies == (Uniform(2), Fps(1.0), EveryFrame())


def test_one_spelling_each_union_is_or_and_a_policy_is_not_called():
    ep = _episode(181)
    with pytest.raises(TypeError, match=r"unsupported operand type\(s\) for \+: 'Uniform' and 'Fps'"):
        uniform(3) + fps(1)  # noqa: B018 - the union is `|`
    with pytest.raises(TypeError, match=r"unsupported operand type\(s\) for \|: 'Uniform' and 'str'"):
        uniform(3) | "fps:1"  # noqa: B018 - parse a spec first
    assert not callable(uniform(3)) and not hasattr(uniform(3), "indices") and not hasattr(uniform(3), "cap")
    idx = (uniform(3) | fps(1)).frame_indices(ep)
    assert idx.dtype == np.int64 and idx.tolist() == list(range(0, 181, 30))
    times = (uniform(3) | fps(1)).timestamps(ep)
    assert times.dtype == np.float32 and times.tolist() == [ep["timestamps"][i] for i in idx]


def test_policies_take_the_typed_episode_or_its_row():
    row = _episode(300, rate=29.97, jitter=1e-4, index=3)
    record = Episode.from_row(row)
    for policy in (uniform(9), fps(2.5), at(0.1, 3.337), every_frame(), cap(fps(4) | uniform(5), 7), motion()):
        assert policy.frame_indices(record).tolist() == policy.frame_indices(row).tolist(), policy
        assert np.array_equal(policy.timestamps(record), policy.timestamps(row))
    backwards = dict(row, timestamps=row["timestamps"][::-1])
    with pytest.raises(ValueError, match="episode 3: frame timestamps are not strictly increasing"):
        uniform(3).frame_indices(backwards)


@pytest.mark.parametrize(
    "spec",
    ["uniform:8", "fps:1", "fps:0.5", "at:0,2.5", "at:1,tolerance=0.1", "every_frame", "motion",
     "motion+uniform:4", "motion+uniform:4@12", "uniform:3+fps:2+at:1",
     "motion:max_keyframes=4,min_spacing=0.5,arm_indices=0/1/2,include_ends=0,gripper_closed=low"],
)
def test_parse_policy_round_trips(spec):
    policy = parse_policy(spec)
    assert parse_policy(policy.spec()) == policy
    assert parse_policy(policy) is policy
    assert pickle.loads(pickle.dumps(policy)) == policy
    assert repr(pickle.loads(pickle.dumps(policy))) == repr(policy)


def test_parse_policy_forms_and_errors():
    assert parse_policy("uniform:8") == Uniform(8)
    assert parse_policy(" all ") == EveryFrame()
    assert parse_policy("motion:max=5,spacing=1,gripper=2,state=obs") == Motion(
        max_keyframes=5, min_spacing=1.0, gripper_index=2, state_key="obs")
    assert parse_policy("motion+uniform:4@12") == Cap(PolicyUnion((Motion(), Uniform(4))), 12)
    assert parse_policy("at:1.5") == At((1.5,))
    for bad, message in (
        ("", r"empty keyframe policy"),
        ("uniform:x", r"keyframe policy 'uniform:x': invalid literal for int\(\)"),
        ("random:3", r"unknown keyframe policy 'random:3'; use uniform:N, fps:HZ"),
        ("motion:nope=1", r"keyframe policy 'motion:nope=1': motion: bad option 'nope=1'"),
        ("uniform:4@x", r"keyframe policy 'uniform:4@x': cap after '@' must be an integer, got 'x'"),
        ("fps:-1", r"keyframe policy 'fps:-1': fps: hz must be a finite number > 0, got -1"),
        ("motion:gripper_closed=mid", r"motion: gripper_closed must be 'high' or 'low', got 'mid'"),
        ("motion:rest_anchor=late", r"motion: rest_anchor must be start, middle or end, got 'late'"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_policy(bad)


def test_policies_hash_stably_for_datasets_fingerprints():
    from datasets.fingerprint import Hasher

    a, b = parse_policy("motion+uniform:4@12"), parse_policy("motion+uniform:4@12")
    assert a is not b and a == b and hash(a) == hash(b)
    assert Hasher.hash(a) == Hasher.hash(b)
    assert Hasher.hash(a) != Hasher.hash(parse_policy("motion+uniform:5@12"))


# -- motion ---------------------------------------------------------------------------------------------------
def _pick_and_place(length=180, closed=(60, 130), pause=((48, 62), (118, 132)), polarity=1.0):
    """Tool xyz moving except during pauses, and a gripper that closes over 8 frames and opens over 8."""
    t = np.arange(length, dtype=np.float64)
    still = np.zeros(length, bool)
    for a, b in pause:
        still[a:b] = True
    speed = np.where(still, 0.0, 0.01)
    xyz = np.stack([np.cumsum(speed), np.cumsum(speed) * 0.5, 0.2 + 0.01 * np.sin(t / 20) * ~still], axis=1)
    g = np.zeros(length)
    c0, c1 = closed
    g[c0 - 8:c0 + 1] = np.linspace(0, 1, 9)
    g[c0:c1] = 1.0
    g[c1:c1 + 8] = np.linspace(1, 0, 9)[1:]
    g = g if polarity > 0 else 1.0 - g
    return np.concatenate([xyz, g[:, None]], axis=1)


def test_motion_finds_gripper_edges_and_rests_from_row_signals():
    state = _pick_and_place()
    ep = _episode(180, **{"observation.state": state.tolist()})
    m = motion()
    kinds = {(e.kind, e.index) for e in m.events(ep)}
    assert ("grasp", 60) in kinds  # closing complete
    assert ("release", 130) in kinds  # opening starts
    assert any(("rest", k) in kinds for k in range(46, 52))  # the arm stops at 48 (smoothed speed)
    assert any(("rest", k) in kinds for k in range(116, 122))
    idx = m.frame_indices(ep).tolist()
    assert {0, 60, 130, 179} <= set(idx)
    assert _is_subset_exact(m.timestamps(ep).tolist(), ep["timestamps"])
    assert {60, 130} <= set(cap(m | uniform(2), 6).frame_indices(ep).tolist())  # row signals reach the terms
    # the other polarity (low = closed)
    flipped = _episode(180, **{"observation.state": _pick_and_place(polarity=-1).tolist()})
    assert {("grasp", 60), ("release", 130)} <= {(e.kind, e.index) for e in motion(gripper_closed="low").events(flipped)}


def test_motion_uses_the_action_when_the_state_has_no_gripper_change():
    state = _pick_and_place()
    command = (np.arange(180) >= 40) & (np.arange(180) < 100)
    state[:, -1] = 0.0
    action = np.concatenate([state[:, :3], command[:, None]], axis=1)
    ep = _episode(180, **{"observation.state": state.tolist(), "action": action.tolist()})
    events = {(e.kind, e.index) for e in motion().events(ep)}
    assert {("grasp", 40), ("release", 100)} <= events


def test_motion_spacing_cap_and_fallback():
    ep = _episode(180, **{"observation.state": _pick_and_place().tolist()})
    assert len(motion(max_keyframes=2).frame_indices(ep)) == 2
    assert set(motion(max_keyframes=2).frame_indices(ep).tolist()) == {60, 130}  # gripper events win
    spaced = motion(min_spacing=3.0).frame_indices(ep)
    assert (np.diff(spaced) >= 90).all()
    constant = _episode(180, **{"observation.state": np.ones((180, 4)).tolist()})
    assert motion(fallback=5).frame_indices(constant).tolist() == uniform(5).frame_indices(constant).tolist()
    assert motion(fallback=3).frame_indices(_episode(60)).tolist() == [0, 30, 59]  # no signal at all
    assert motion(gripper_key="", arm_key="").frame_indices(ep).tolist() == uniform(8).frame_indices(ep).tolist()


def _data_parquet(tmp_path, lengths=(120, 150)) -> str:
    """A data parquet of pick-and-place episodes, one row group per episode like lerobot; returns its root."""
    tables = []
    for e, n in enumerate(lengths):
        state = _pick_and_place(n, closed=(50 + e * 10, 100), pause=((40, 52), (90, 102)))
        tables.append(pa.table({
            "episode_index": pa.array([e] * n, pa.int64()),
            "timestamp": pa.array(np.arange(n) / 30.0, pa.float32()),
            "observation.state": pa.FixedSizeListArray.from_arrays(pa.array(state.ravel(), pa.float32()), 4),
            "note": pa.array(["text"] * n),
        }))
    path = tmp_path / "data" / "chunk-000" / "file-000.parquet"
    path.parent.mkdir(parents=True)
    with pq.ParquetWriter(path, tables[0].schema) as writer:
        for t in tables:
            writer.write_table(t)
    return str(tmp_path)


def test_motion_reads_signals_from_the_episode_row_group(tmp_path):
    row = _episode(150, index=1, root=_data_parquet(tmp_path), data_file="data/chunk-000/file-000.parquet")
    signals = read_episode_signals(row, ["observation.state", "action", "note"])  # absent / not numeric: left out
    assert set(signals) == {"observation.state"} and signals["observation.state"].shape == (150, 4)
    assert {("grasp", 60), ("release", 100)} <= {(e.kind, e.index) for e in motion().events(row)}
    # the typed record reads the same row group (and the cache answers the same arrays)
    assert read_episode_signals(Episode.from_row(row), ["observation.state", "action", "note"]) is signals
    assert motion().frame_indices(Episode.from_row(row)).tolist() == motion().frame_indices(row).tolist()


def test_signals_carried_by_the_row_win_and_a_wrong_length_falls_back_to_the_parquet(tmp_path):
    root = _data_parquet(tmp_path)
    row = _episode(150, index=1, root=root, data_file="data/chunk-000/file-000.parquet")
    carried = np.zeros((150, 2))
    ep = Episode.from_row(row)
    got = episode_signals(ep, ["observation.state"], carried={"observation.state": carried.tolist()})
    assert got["observation.state"].shape == (150, 2) and not got["observation.state"].any()
    short = episode_signals(ep, ["observation.state"], carried={"observation.state": carried[:10].tolist()})
    assert short["observation.state"].shape == (150, 4)  # from the parquet
    assert episode_signals(Episode.from_row(_episode(150, index=1)), ["observation.state"]) == {}  # nowhere
    with pytest.raises(ValueError, match="episode 1: no data parquet"):
        read_episode_signals(_episode(150, index=1), ["observation.state"])


def test_motion_keyframes_match_ground_truth_on_the_sample_dataset(tmp_path):
    """Within 2 frames of every episode's ground-truth grasp and release (issue 3)."""
    from lerobot_keyframes.dataset import load_episodes
    from lerobot_keyframes.testing.sample import make_sample_dataset

    checked = 0
    for seed, seconds in ((0, 6.0), (1, 2.0), (2, 4.0)):
        root = make_sample_dataset(tmp_path / f"s{seed}", episodes=4, cameras=("front",), width=64, height=48,
                                   seed=seed, episode_seconds=seconds, codec="h264")  # signals only
        truth = json.loads((root / "ground_truth.json").read_text())
        fps_ = truth["fps"]
        for row, gt in zip(load_episodes(root), truth["episodes"]):
            assert row["episode_index"] == gt["episode_index"]
            times = motion().timestamps(row).astype(np.float64)
            for key in ("grasp_time", "release_time"):
                assert np.abs(times - gt[key]).min() * fps_ <= 2 + 1e-6, (seed, row["episode_index"], key, times)
            checked += 1
    assert checked == 12


def test_a_records_carried_signals_reach_motion_like_a_rows_also_inside_a_union():
    """A frame-level row grouped per episode carries its signals; as an `Episode` they ride in `signals`."""
    import dataclasses

    n = 150
    gripper = np.where((np.arange(n) >= 50) & (np.arange(n) < 120), 1.0, 0.0)
    arm = np.linspace(0.0, 1.0, n)
    state = np.stack([arm, gripper], axis=1).tolist()
    row = _episode(n, index=3, **{"observation.state": state})
    record = dataclasses.replace(Episode.from_row(row), signals={"observation.state": state})
    from_row = motion().frame_indices(row)
    assert motion().frame_indices(record).tolist() == from_row.tolist()
    assert (motion() | uniform(2)).frame_indices(record).tolist() == (motion() | uniform(2)).frame_indices(row).tolist()
    bare = Episode.from_row(_episode(n, index=3))  # no signals anywhere: motion falls back to uniform
    assert motion().frame_indices(bare).tolist() != from_row.tolist()
    assert {50, 120} & set(from_row.tolist()) or {49, 119} & set(from_row.tolist())
