"""Episode quality checks on real (tiny) videos written with PyAV: black, frozen, truncated and gappy streams."""

from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lerobot_keyframes.dataset import load_episodes
from lerobot_keyframes.frames import make_frame_provider
from lerobot_keyframes.quality import QualityConfig, bad_episodes, check_episodes, findings_as_dict

CAMERA = "observation.images.front"


@pytest.fixture(scope="module")
def good_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lerobot_keyframes.testing.sample import make_sample_dataset

    return make_sample_dataset(tmp_path_factory.mktemp("quality") / "ds", episodes=4, cameras=("front",), width=64,
                               height=48, codec="h264", episode_seconds=1.0)


def _video(root: Path) -> Path:
    return next((root / "videos" / CAMERA).rglob("*.mp4"))


def _rewrite(path: Path, rows: list[dict], change) -> None:
    """Decode every frame of `path` and write it again (H.264, pts = frame number at the dataset fps), with
    `change(episode_index, frame_in_episode, rgb)` returning the picture to write or None to drop the frame."""
    import av

    fps = int(rows[0]["fps"])
    with av.open(str(path)) as src:
        pictures = [f.to_ndarray(format="rgb24") for f in src.decode(video=0)]
    owner = []
    for r in rows:
        cam = next(c for c in r["cameras"] if c["key"] == CAMERA)
        first = int(round(cam["from_timestamp"] * fps))
        owner += [(r["episode_index"], first + k, k) for k in range(r["length"])]
    tmp = path.with_suffix(".tmp.mp4")
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"bf": "0", "g": "2"})
        stream.width, stream.height, stream.pix_fmt = pictures[0].shape[1], pictures[0].shape[0], "yuv420p"
        stream.time_base = Fraction(1, fps)
        for e, i, k in owner:
            rgb = change(e, k, pictures[i])
            if rgb is None:
                continue
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    tmp.replace(path)


def _check(root: Path, **config) -> dict:
    rows = load_episodes(root).to_list()
    provider = make_frame_provider(rows, video_backend="pyav")
    return check_episodes(rows, provider, QualityConfig(**config))


def test_a_good_dataset_has_no_findings(good_root: Path):
    assert _check(good_root) == {}


def test_black_frozen_truncated_and_gappy_streams_are_found(good_root: Path, tmp_path: Path):
    root = tmp_path / "ds"
    shutil.copytree(good_root, root)
    rows = load_episodes(root).to_list()
    lengths = {r["episode_index"]: r["length"] for r in rows}
    frozen: dict[int, np.ndarray] = {}

    def change(e: int, k: int, rgb: np.ndarray):
        if e == 1:
            return np.zeros_like(rgb) + 3  # black
        if e == 2:
            return frozen.setdefault(e, rgb)  # the first picture, again and again
        if e == 3 and (10 <= k < 14 or k >= lengths[3] - 6):
            return None  # a gap of 4 frames and a stream that ends 6 frames early
        return rgb

    _rewrite(_video(root), rows, change)
    found = _check(root)
    assert sorted(found) == [1, 2, 3]
    kinds = {e: [f.kind for f in fs] for e, fs in found.items()}
    assert kinds == {1: ["black_camera"], 2: ["frozen_camera"], 3: ["missing_frames"]}
    missing = found[3][0]
    assert missing.camera == CAMERA and missing.value == 10.0
    assert missing.time == pytest.approx(float(np.float32(10 / rows[3]["fps"])))
    assert "6 after the stream ends" in missing.message and _video(root).name in missing.message
    assert "episode 3, camera observation.images.front at 0.333 s: missing_frames" in str(missing)
    json.dumps(findings_as_dict(found))  # serializable for provenance
    assert bad_episodes(found) == [1, 2, 3]


def test_a_missing_video_file_is_a_finding_not_a_crash(good_root: Path, tmp_path: Path):
    root = tmp_path / "ds"
    shutil.copytree(good_root, root)
    _video(root).unlink()
    found = _check(root)
    assert sorted(found) == [0, 1, 2, 3]
    assert all(fs[0].kind == "missing_frames" and "is missing" in fs[0].message for fs in found.values())


def test_short_episodes_and_a_constant_gripper(good_root: Path, tmp_path: Path):
    root = tmp_path / "ds"
    shutil.copytree(good_root, root)
    data = next((root / "data").rglob("*.parquet"))
    table = pq.read_table(data)
    state = np.asarray(table["observation.state"].to_pylist(), dtype=np.float32)
    state[np.asarray(table["episode_index"]) == 2, 3] = 0.0  # episode 2's gripper never moves
    i = table.schema.get_field_index("observation.state")
    table = table.set_column(i, table.schema.field(i), pa.FixedSizeListArray.from_arrays(pa.array(state.ravel()), 4))
    pq.write_table(table, data, row_group_size=max(len(table) // 4, 1))
    found = _check(root)
    assert [f.kind for f in found[2]] == ["gripper_constant"] and "observation.state[3]" in found[2][0].message
    assert set(found) == {2}
    # lengths: one episode far shorter than its neighbours (rows without cameras: only the length is judged)
    rows = [{"episode_index": e, "length": n, "fps": 30.0, "timestamps": list(np.arange(n) / 30.0), "cameras": []}
            for e, n in enumerate([300, 290, 60, 310, 305])]
    found = check_episodes(rows, None, QualityConfig())
    assert list(found) == [2] and found[2][0].kind == "short_episode" and found[2][0].value == pytest.approx(60 / 302.5)
    assert check_episodes(rows, None, QualityConfig(short_fraction=0.1)) == {}


def test_skip_bad_episodes_leaves_them_out_of_the_run(good_root: Path, tmp_path: Path):
    from lerobot_keyframes.annotate import run_annotation
    from lerobot_keyframes.annotate.config import AnnotateConfig, InterjectionsConfig, PlanConfig, VqaConfig
    from lerobot_keyframes.testing.scripted import ScriptedBackend, plausible_answers
    from lerobot_keyframes.vlm.config import VlmConfig

    root = tmp_path / "ds"
    shutil.copytree(good_root, root)
    rows = load_episodes(root).to_list()
    _rewrite(_video(root), rows, lambda e, k, rgb: np.zeros_like(rgb) if e == 1 else rgb)
    backend = ScriptedBackend(plausible_answers)
    common = dict(plan=PlanConfig(n_task_rephrasings=0, subtask_describe_first=False, min_subtask_seconds=0.2),
                  interjections=InterjectionsConfig(enabled=False), vqa=VqaConfig(enabled=False))
    vlm_config = VlmConfig(backend="openai", model_id="scripted")
    kept = run_annotation(AnnotateConfig(root=root, out=tmp_path / "a", **common), vlm_config, vlm=backend)
    assert kept.failures == {} and [f.kind for f in kept.quality[1]] == ["black_camera"]
    assert "quality: episode 1, camera observation.images.front" in kept.summary()
    provenance = json.loads((tmp_path / "a/meta/annotation_provenance.json").read_text())
    assert provenance["quality"]["1"][0]["kind"] == "black_camera"
    calls = backend.calls
    skipped = run_annotation(
        AnnotateConfig(root=root, out=tmp_path / "b", quality=QualityConfig(skip_bad_episodes=True), **common), vlm_config,
        vlm=backend)
    # a skipped episode is not a failed one (that would fail `validate`): reported as skipped, with the reason
    assert skipped.failures == {} and list(skipped.skipped) == [1] and "skip_bad_episodes" in skipped.skipped[1]
    assert "skipped episode 1" in skipped.summary()
    assert calls % 4 == 0 and backend.calls - calls == calls // 4 * 3  # the model never sees the black episode
    from lerobot_keyframes.language import read_dataset_annotations

    anns, _ = read_dataset_annotations(tmp_path / "b")
    assert sorted(e for e, a in anns.items() if not a.empty) == [0, 2, 3]
