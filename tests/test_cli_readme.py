"""The README's snippets run as written: the Python ones against the local Hub (the keyframes one offline too),
every `lerobot-keyframes` command line of its bash blocks parses."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ("hub_fixtures",)

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), re.S)


def run_python(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, cwd=cwd,
                          env={**os.environ, **env})


@pytest.fixture
def hub_sample(local_hub, sample_root: Path) -> str:
    from lerobot_keyframes.hub.push import push_dataset

    push_dataset(sample_root, "tester/sample", private=True)
    return "tester/sample"


def test_readme_python_snippets_run_against_the_local_hub(hub_sample: str, hub_env: dict[str, str],
                                                          tmp_path: Path) -> None:
    keyframes_block, annotate_block, map_block = blocks("python")[:3]
    assert 'lk.load_episodes("user/dataset")' in keyframes_block and "run_annotation(" in annotate_block
    code = keyframes_block.replace('"user/dataset"', f'"{hub_sample}"')
    online = run_python(code, hub_env, tmp_path)
    assert online.returncode == 0, online.stderr[-3000:]
    assert "keyframes.observation.images.front" in online.stdout
    # offline, like huggingface_hub: the cached snapshot (meta, data and the videos the first run fetched)
    offline_env = {**hub_env, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}
    offline = run_python(code, offline_env, tmp_path)
    assert offline.returncode == 0, offline.stderr[-3000:]
    assert offline.stdout == online.stdout

    from lerobot_keyframes.testing.tiny_qwen import tiny_qwen_cached

    model = tiny_qwen_cached("qwen2_5_vl")
    code = (annotate_block.replace('"user/dataset-annotated"', '"tester/annotated"')
            .replace('"user/dataset"', f'"{hub_sample}"').replace('"Qwen/Qwen2.5-VL-3B-Instruct"', f'"{model}"'))
    annotated = run_python(code, hub_env, tmp_path)
    assert annotated.returncode == 0, annotated.stderr[-3000:]
    assert "annotated 2 of 2 episodes" in annotated.stdout and "pushed:" in annotated.stdout
    assert "None=" not in annotated.stdout and "speech" in annotated.stdout
    # annotation as a datasets.map step: the snippet runs on its own (its imports, its `episodes`)
    code = map_block.replace('"user/dataset"', f'"{hub_sample}"').replace('"Qwen/Qwen2.5-VL-3B-Instruct"', f'"{model}"')
    mapped = run_python(code.replace('out="annotated"', 'out="mapped"'), hub_env, tmp_path)
    assert mapped.returncode == 0, mapped.stderr[-3000:]
    assert "annotated 2 of 2 episodes" in mapped.stdout and (tmp_path / "mapped" / "meta" / "info.json").is_file()
    card = hub_sample and __import__("huggingface_hub").hf_hub_download("tester/annotated", "README.md",
                                                                         repo_type="dataset")
    text = Path(card).read_text()
    assert "license: apache-2.0" in text and str(model) not in text and str(tmp_path) not in text


def test_readme_command_lines_parse() -> None:
    from lerobot_keyframes.cli import parse

    commands = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#", 1)[0].strip() if not line.strip().startswith("lerobot") else line.strip()
            if line.startswith(("lerobot-keyframes ", "lerobot-annotate ")):
                commands.append(shlex.split(line))
    assert len(commands) >= 2
    for argv in commands:
        args = argv[1:] if argv[0] == "lerobot-keyframes" else ["annotate", *argv[1:]]
        parse(args)  # a mistake would exit 2


def test_keyframe_transform_accepts_with_rank(sample_root: Path) -> None:
    import lerobot_keyframes as lk
    from lerobot_keyframes.transform import KeyframeTransform

    episodes = lk.load_episodes(sample_root, episodes=[0], cameras=["observation.images.front"])
    transform = KeyframeTransform.for_dataset(episodes, policy="uniform:2")
    out = episodes.map(transform, batched=True, with_rank=True, features=transform.features(episodes.features))
    plain = episodes.map(transform, batched=True, features=transform.features(episodes.features))
    assert out["keyframe_timestamps.observation.images.front"] == plain["keyframe_timestamps.observation.images.front"]
    assert len(out["keyframes.observation.images.front"][0]) == 2
