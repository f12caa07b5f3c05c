"""Nothing to work on, or nothing that can be decoded: said in one line naming the file, and nothing written.

- a dataset with 0 episodes and `--only_episodes=[]` failed deep inside (`Column name [...] not in the
  dataset` from annotate, "the dataset has no cameras" from keyframes; validate checked 0 episodes and passed);
- an mp4 whose codec tag (fourcc) FFmpeg does not know raised `'NoneType' object has no attribute 'width'`
  (an AttributeError traceback from keyframes; every annotate episode failed with that line, no file named).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from adversarial_helpers import model_flags, one_error_line, tree_hash

EPISODES = "meta/episodes/chunk-000/file-000.parquet"
CAM = "observation.images.front"
VIDEO = f"videos/{CAM}/chunk-000/file-000.mp4"


def _no_episodes(root: Path) -> None:
    pq.write_table(pq.read_table(root / EPISODES).slice(0, 0), root / EPISODES)
    info = json.loads((root / "meta/info.json").read_text())
    info.update(total_episodes=0, total_frames=0)
    (root / "meta/info.json").write_text(json.dumps(info))


@pytest.mark.parametrize("command", ["annotate", "keyframes"])
def test_a_dataset_without_episodes_is_refused_naming_its_episodes_metadata(tiny: Path, tmp_path: Path, cli,
                                                                            model_server, command: str) -> None:
    _no_episodes(tiny)
    before = tree_hash(tiny)
    out = tmp_path / "out"
    if command == "annotate":
        rc, _, err = cli("annotate", f"--root={tiny}", f"--out={out}", *model_flags(model_server.api_base))
    else:
        rc, _, err = cli("keyframes", tiny, "--out", out, "--policy", "uniform:2", "--use_cache", "false")
    assert rc == 2
    assert f"{tiny / 'meta/episodes'}: the dataset has no episodes" in one_error_line(err)
    assert model_server.stats.requests == 0 and tree_hash(tiny) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no output, staging or lock file


@pytest.mark.parametrize("argv", [
    ["annotate", "--only_episodes=[]"],
    ["keyframes", "--episodes=[]"],
    ["validate", "--episodes=[]"],
])
def test_an_empty_episode_selection_is_refused(tiny: Path, tmp_path: Path, cli, model_server, argv: list[str]) -> None:
    command, selection = argv
    out = tmp_path / "out"
    if command == "annotate":
        rc, _, err = cli(command, f"--root={tiny}", f"--out={out}", selection, *model_flags(model_server.api_base))
    elif command == "keyframes":
        rc, _, err = cli(command, tiny, "--out", out, selection, "--policy", "uniform:2", "--use_cache", "false")
    else:
        rc, _, err = cli(command, tiny, selection)
    assert rc == 2
    assert "selects no episode" in one_error_line(err)
    assert model_server.stats.requests == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def _unknown_codec(root: Path) -> Path:
    """Rewrite the sample entry of the mp4's `stsd` box (the codec tag, `avc1`) to a fourcc FFmpeg does not know."""
    path = root / VIDEO
    data = bytearray(path.read_bytes())
    at = data.find(b"stsd")
    assert at > 0 and data[at + 16:at + 20] == b"avc1"  # size, 'stsd', version/flags, count, entry size, FOURCC
    data[at + 16:at + 20] = b"zzzz"
    path.write_bytes(bytes(data))
    return path


def test_an_unknown_codec_tag_names_file_and_camera(tiny: Path, tmp_path: Path, cli) -> None:
    from lerobot_keyframes.frames import make_frame_provider
    from lerobot_keyframes.frames.errors import FrameDecodeError

    video = _unknown_codec(tiny)
    with pytest.raises(FrameDecodeError) as info:
        make_frame_provider(tiny, cache_mb=0).frames_at(0, [0.0])
    assert info.value.file == str(video) and info.value.camera == CAM and info.value.episode == 0
    assert "codec is unknown" in str(info.value)

    rc, _, err = cli("keyframes", tiny, "--out", tmp_path / "kf", "--policy", "uniform:2", "--use_cache", "false")
    assert rc == 2
    line = one_error_line(err)
    assert str(video) in line and f"camera {CAM}" in line and "codec is unknown" in line
    assert not (tmp_path / "kf").exists()


def test_annotate_fails_every_episode_of_an_undecodable_video_naming_it_and_writes_nothing(
        tiny: Path, tmp_path: Path, cli, model_server) -> None:
    video = _unknown_codec(tiny)
    out = tmp_path / "out"
    rc, stdout, err = cli("annotate", f"--root={tiny}", f"--out={out}", *model_flags(model_server.api_base))
    assert rc == 1 and "Traceback" not in err
    failed = [line for line in stdout.splitlines() if line.startswith("FAILED episode")]
    assert len(failed) == 2 and all(str(video) in f and f"camera {CAM}" in f and "codec is unknown" in f for f in failed)
    assert "'NoneType'" not in stdout + err
    assert not out.exists() and model_server.stats.requests == 0
