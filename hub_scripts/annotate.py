# /// script
# requires-python = ">=3.10"
# dependencies = [
#     "lerobot_keyframes",
#     "vllm>=0.10",
# ]
# ///
"""Annotate a LeRobot v3 dataset with lerobot_keyframes: a thin pass-through to `lerobot-keyframes annotate`.

Runs wherever uv runs, with the same arguments as the CLI command:

    uv run hub_scripts/annotate.py --repo_id=<user>/<dataset> --vlm.backend=vllm \\
        --vlm.model_id=Qwen/Qwen2.5-VL-7B-Instruct --push_to_hub=true --new_repo_id=<user>/<annotated>

On Hugging Face Jobs, `lerobot-keyframes job ... -- <the same arguments>` submits the same run (it installs
the package into the vLLM image and keeps the image's own vLLM; `--job.runner=uv` runs this script instead).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from lerobot_keyframes.cli import main as cli_main

    return cli_main(["annotate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
