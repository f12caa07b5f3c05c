"""KeyframeTransform on real decoded videos: columns, fingerprint/cache, num_proc, frame-level input, Ray-style
batches, materialized messages, and the `keyframes` CLI."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lerobot_keyframes.frames.policies import parse_policy
from lerobot_keyframes.transform import (
    KeyframesConfig,
    KeyframeTransform,
    extract_keyframes,
    group_by_episode,
    keyframe_column,
    materialize_messages,
    timestamp_column,
)


@pytest.fixture(scope="module")
def episodes(sample_root):
    from lerobot_keyframes.dataset import load_episodes

    return load_episodes(sample_root)


@pytest.fixture(scope="module")
def cameras(episodes):
    return tuple(episodes[0]["camera_keys"])


@pytest.fixture(scope="module")
def mapped(episodes):
    transform = KeyframeTransform.for_dataset(episodes, policy="motion+uniform:3")
    return transform, episodes.map(transform, batched=True, batch_size=1, features=transform.features(episodes.features))


def _exact(values, pool) -> bool:
    bits = {np.float32(t).tobytes() for t in pool}
    return all(np.float32(v).tobytes() in bits and float(np.float32(v)) == v for v in values)


def test_columns_features_and_exact_times(mapped, episodes, cameras):
    from datasets import Image, List, Value

    transform, out = mapped
    assert transform.cameras == cameras
    for cam in cameras:
        assert out.features[keyframe_column(cam)] == List(Image())
        assert out.features[timestamp_column(cam)] == List(Value("float32"))
    assert out.column_names[: len(episodes.column_names)] == episodes.column_names
    for row in out:
        expected = parse_policy("motion+uniform:3").timestamps(row).tolist()
        for cam in cameras:
            times = row[timestamp_column(cam)]
            assert times == expected and _exact(times, row["timestamps"])
            images = row[keyframe_column(cam)]
            assert len(images) == len(times) and images[0].size == (320, 240)


def test_png_keyframes_equal_the_provider_frames(episodes, cameras):
    from PIL import Image

    from lerobot_keyframes.frames.provider import make_frame_provider

    transform = KeyframeTransform(policy="uniform:4", cameras=cameras[1:], image_format="png")
    row = episodes[1]
    result = transform.process_episode(row)
    frames = make_frame_provider(row["root"]).frames_at(row, result[timestamp_column(cameras[1])], camera=cameras[1])
    for stored, expected in zip(result[keyframe_column(cameras[1])], frames.data):
        decoded = np.asarray(Image.open(io.BytesIO(stored["bytes"])))
        assert np.array_equal(decoded, expected.permute(1, 2, 0).numpy())


def test_messages_reference_keyframes_and_materialize(mapped, cameras):
    from lerobot_keyframes.vlm.messages import check_conversation

    transform, out = mapped
    row = out[0]
    stored = row["messages"]
    assert [m["role"] for m in stored] == ["user"]
    refs = [b for b in stored[0]["content"] if b["type"] == "image"]
    times = row[timestamp_column(cameras[0])]
    assert len(refs) == len(times) * len(cameras)
    assert (refs[1]["kind"], refs[1]["column"], refs[1]["indices"]) == ("frame", keyframe_column(cameras[0]), [1])
    assert refs[1]["timestamps"] == [times[1]]  # exact float32, not rounded through JSON
    assert row["task"] in stored[0]["content"][-1]["text"]
    messages = materialize_messages(row)
    check_conversation(messages)
    images = [b for b in messages[0]["content"] if b["type"] == "image"]
    assert np.array_equal(np.asarray(images[1]["image"]), np.asarray(row[keyframe_column(cameras[0])][1]))
    assert images[1]["source"]["timestamp"] == times[1] and images[1]["source"]["camera"] == cameras[0]
    assert set(images[1]["source"]) == {"file", "pts", "camera", "episode_index", "timestamp"}


@pytest.mark.parametrize("visual", ["video", "contact_sheet", "none"])
def test_other_visual_modes(episodes, visual):
    from lerobot_keyframes.vlm.messages import check_conversation

    transform = KeyframeTransform.for_dataset(episodes, policy="uniform:5", visual=visual, sheet_frames=3,
                                              system_prompt="You watch robots. Episode {episode_index}.")
    out = episodes.select([0]).map(transform, batched=True, features=transform.features(episodes.features))
    messages = materialize_messages(out[0])
    check_conversation(messages)
    assert messages[0] == {"role": "system", "content": [{"type": "text", "text": "You watch robots. Episode 0."}]}
    kinds = [b["type"] for b in messages[1]["content"]]
    if visual == "video":
        assert kinds == ["video", "video", "text"]
        block = messages[1]["content"][0]
        assert len(block["video"]) == 5 and block["timestamps"] == out[0][timestamp_column(transform.cameras[0])]
        assert block["video_metadata"]["frames_indices"] == block["frames_indices"]
    elif visual == "contact_sheet":
        assert kinds == ["image"] * 4 + ["text"]  # 5 frames, 3 per sheet -> 2 sheets per camera
    else:
        assert kinds == ["text"]


def test_fingerprint_is_stable_and_the_second_map_hits_the_cache(episodes, tmp_path, monkeypatch):
    def run(transform, name):
        return episodes.map(transform, batched=True, batch_size=1, features=transform.features(episodes.features),
                            cache_file_name=str(tmp_path / name))

    first = run(KeyframeTransform.for_dataset(episodes, policy="uniform:2"), "a.arrow")
    twin = KeyframeTransform.for_dataset(episodes, policy="uniform:2")
    assert twin.fingerprint() == KeyframeTransform.for_dataset(episodes, policy="uniform:2").fingerprint()

    def boom(self, row):
        raise AssertionError("recomputed instead of loading the cache")

    monkeypatch.setattr(KeyframeTransform, "process_episode", boom)
    second = run(twin, "a.arrow")
    assert second._fingerprint == first._fingerprint
    assert second[timestamp_column(twin.cameras[0])] == first[timestamp_column(twin.cameras[0])]
    monkeypatch.undo()
    changed = run(KeyframeTransform.for_dataset(episodes, policy="uniform:3"), "b.arrow")
    assert changed._fingerprint != first._fingerprint
    assert KeyframeTransform.for_dataset(episodes, jpeg_quality=80).fingerprint() != twin.fingerprint()


def test_transform_map_caches_an_in_memory_table_with_num_proc_2(episodes, tmp_path, monkeypatch):
    transform = KeyframeTransform.for_dataset(episodes, policy="uniform:2")
    first = transform.map(episodes, num_proc=2, cache_dir=tmp_path)
    assert len(first.cache_files) == 2 and all(Path(f["filename"]).parent == tmp_path for f in first.cache_files)
    monkeypatch.setattr(KeyframeTransform, "process_episode", lambda self, row: 1 / 0)
    again = KeyframeTransform.for_dataset(episodes, policy="uniform:2").map(episodes, num_proc=2, cache_dir=tmp_path)
    assert again.cache_files == first.cache_files
    assert again.to_dict() == first.to_dict()
    with pytest.raises(ZeroDivisionError):
        transform.map(episodes, use_cache=False)


def test_num_proc_2_matches_one_process_after_the_parent_decoded(episodes, mapped):
    transform, one = mapped
    transform.process_episode(episodes[0])  # the parent has used torch and the decoders before forking
    two = episodes.map(transform, batched=True, batch_size=1, num_proc=2, features=transform.features(episodes.features))
    for cam in transform.cameras:
        assert two[timestamp_column(cam)] == one[timestamp_column(cam)]
        a, b = one[0][keyframe_column(cam)][-1], two[0][keyframe_column(cam)][-1]
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_frame_level_dataset_grouped_by_episode(sample_root, mapped, cameras):
    from datasets import Dataset

    transform, by_episode = mapped
    files = sorted(str(p) for p in (Path(sample_root) / "data").rglob("*.parquet"))
    frames = Dataset.from_parquet(files)
    grouped = group_by_episode(frames)
    fallback = group_by_episode(frames, use_batch=False)
    assert len(grouped) == len(by_episode) == len(fallback)
    assert grouped.to_dict() == fallback.to_dict()
    assert grouped.features == fallback.features
    shuffled = group_by_episode(frames.shuffle(seed=0))
    assert shuffled["episode_index"] == grouped["episode_index"]
    assert shuffled["timestamp"] == grouped["timestamp"]

    frame_transform = KeyframeTransform(policy="motion+uniform:3", cameras=cameras, root=str(sample_root))
    out = grouped.map(frame_transform, batched=True, batch_size=1, features=frame_transform.features(grouped.features))
    for cam in cameras:
        assert out[timestamp_column(cam)] == by_episode[timestamp_column(cam)]
    with pytest.raises(ValueError, match="group_by_episode"):
        frame_transform({"timestamp": [[0.0, 0.1]], "episode_index": [[0, 1]]})
    with pytest.raises(ValueError, match="root"):
        KeyframeTransform(cameras=cameras)({"timestamp": [[0.0]], "episode_index": [[0]]})


def test_plain_python_and_ray_style_batches(episodes, mapped, cameras):
    transform, out = mapped
    batch = episodes[:2]  # dict of lists
    result = transform(batch)
    assert set(result) == set(transform.output_columns())
    assert all(len(v) == 2 for v in result.values())
    assert result[timestamp_column(cameras[0])] == out[timestamp_column(cameras[0])]
    assert isinstance(result[keyframe_column(cameras[0])][0][0]["bytes"], bytes)
    # Ray Data hands numpy columns (object arrays for nested values) and keeps only what the function returns
    ray_batch = {k: np.array(v, dtype=object) if not np.isscalar(v[0]) else np.asarray(v) for k, v in batch.items()}
    ray_batch["timestamps"] = np.empty(2, dtype=object)
    ray_batch["timestamps"][:] = [np.asarray(t, dtype=np.float32) for t in batch["timestamps"]]
    keep = KeyframeTransform(policy=transform.policy, cameras=cameras, passthrough=True)(ray_batch)
    assert keep["episode_index"] == [0, 1] and keep["task"] == batch["task"]
    assert keep[timestamp_column(cameras[0])] == result[timestamp_column(cameras[0])]
    single = transform(episodes[1])  # one row in, one row out
    assert single[timestamp_column(cameras[1])] == out[1][timestamp_column(cameras[1])]


def test_config_validation(episodes):
    with pytest.raises(ValueError, match="unknown field"):
        KeyframeTransform(prompt="{nope}")
    with pytest.raises(ValueError, match="visual"):
        KeyframeTransform(visual="gif")
    with pytest.raises(ValueError, match="for_dataset"):
        KeyframeTransform().features()
    with pytest.raises(ValueError, match="format must be 'parquet' or 'arrow'"):
        KeyframesConfig(source="x", format="csv")
    assert KeyframeTransform(cameras="front").cameras == ("front",)
    with pytest.raises(ValueError, match="video_backend must be one of"):
        KeyframeTransform(video_backend="opencv")
    with pytest.raises(ValueError, match=r"provider_options: unknown option\(s\) \['cache_bytes'\]"):
        KeyframeTransform(provider_options={"cache_bytes": 1})
    assert KeyframeTransform(provider_options={"cache_mb": 4}).provider_options == (("cache_mb", 4),)
    with pytest.raises(ValueError, match="visual must be one of"):
        KeyframesConfig(source="x", visual="gif")
    with pytest.raises(ValueError, match="video_backend must be one of"):
        KeyframesConfig(source="x", video_backend="opencv")


def test_keyframes_flag_backend_still_names_the_video_backend():
    from lerobot_keyframes.cli import build_parser
    from lerobot_keyframes.cli.flags import dataclass_from_flags

    for flag in ("--video_backend", "--backend"):
        args = build_parser().parse_args(["keyframes", "some/ds", f"{flag}=pyav"])
        assert dataclass_from_flags(args, "", KeyframesConfig, source="some/ds").video_backend == "pyav"


def test_extract_keyframes_writes_parquet_and_reuses_its_cache(sample_root, tmp_path, monkeypatch):
    from datasets import Dataset, Image, List

    config = KeyframesConfig(source=str(sample_root), out=str(tmp_path / "out"), policy="fps:1",
                             cameras=None, cache_dir=str(tmp_path / "cache"))
    result = extract_keyframes(config)
    shards = sorted((tmp_path / "out" / "data").glob("*.parquet"))
    assert [p.name for p in shards] == ["train-00000-of-00001.parquet"]
    loaded = Dataset.from_parquet([str(p) for p in shards])
    cam = result[0]["camera_keys"][0]
    assert loaded.features[keyframe_column(cam)] == List(Image())
    assert loaded[0][timestamp_column(cam)] == result[0][timestamp_column(cam)]
    assert materialize_messages(loaded[0])[0]["content"][1]["image"].size == (320, 240)
    assert (tmp_path / "out" / "keyframes_config.json").is_file()
    with pytest.raises(FileExistsError):
        extract_keyframes(config)
    monkeypatch.setattr(KeyframeTransform, "process_episode", lambda self, row: 1 / 0)
    again = extract_keyframes(KeyframesConfig(**{**config.__dict__, "out": None}))  # from the cache file
    assert again[timestamp_column(cam)] == result[timestamp_column(cam)]


def test_cli_keyframes_subprocess(sample_root, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp_path / "hf")}
    out = tmp_path / "kf"
    cmd = [sys.executable, "-m", "lerobot_keyframes.cli", "keyframes", str(sample_root), "--out", str(out),
           "--policy", "uniform:2", "--cameras", "observation.images.wrist", "--num_proc", "1", "--format", "arrow"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    from datasets import load_from_disk

    ds = load_from_disk(str(out))
    assert len(ds) == 2 and ds[0]["camera_keys"] == ["observation.images.wrist"]
    assert len(ds[0]["keyframes.observation.images.wrist"]) == 2
    assert "keyframes.observation.images.front" not in ds.column_names
    bad = subprocess.run([*cmd[:5], "--out", str(tmp_path / "x"), "--policy", "wobble:3"], capture_output=True,
                         text=True, env=env, timeout=300)
    assert bad.returncode == 2 and "wobble" in bad.stderr


@pytest.mark.slow
def test_ray_data_map_batches(episodes, mapped, cameras):
    """The same callable as a real Ray Data batch function (numpy batches in, dict of lists out)."""
    ray = pytest.importorskip("ray")
    transform, out = mapped
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        rows = ray.data.from_items(episodes.to_list()).map_batches(
            KeyframeTransform(policy=transform.policy, cameras=cameras, passthrough=True), batch_size=2,
            batch_format="numpy",
        ).take_all()
    finally:
        ray.shutdown()
    rows.sort(key=lambda r: int(r["episode_index"]))
    for row, expected in zip(rows, out):
        for cam in cameras:
            assert list(row[timestamp_column(cam)]) == expected[timestamp_column(cam)]
        messages = materialize_messages(row)
        assert np.array_equal(np.asarray(messages[0]["content"][1]["image"]),
                              np.asarray(expected[keyframe_column(cameras[0])][0]))


def test_transform_map_takes_an_iterable_dataset(episodes, mapped, cameras):
    """`transform.map(iterable)` maps lazily, as `IterableDataset.map` does: the same columns and frames as the
    `Dataset` map; `num_proc` is refused in one line (an iterable is read in one process)."""
    transform, out = mapped
    rows = list(transform.map(episodes.to_iterable_dataset()))
    assert len(rows) == len(out) and len(rows[0][timestamp_column(cameras[0])]) >= 3
    for row, expected in zip(rows, out):
        for cam in cameras:
            assert row[timestamp_column(cam)] == expected[timestamp_column(cam)]
            assert [np.asarray(im).tobytes() for im in row[keyframe_column(cam)]] == \
                [np.asarray(im).tobytes() for im in expected[keyframe_column(cam)]]
        assert row["messages"] == expected["messages"]
    with pytest.raises(ValueError, match=r"^num_proc: an IterableDataset is mapped lazily"):
        transform.map(episodes.to_iterable_dataset(), num_proc=2)
