"""Record a two-camera 640x480 dataset with lerobot 0.6.1's own writer (`LeRobotDataset.create`, `add_frame`,
`save_episode`, `finalize`): lerobot's encoder settings (AV1, GOP 2, CRF 30, preset 12), its file layout (episodes
concatenated into one mp4 per camera), its float32 timestamps.

The pictures are the sample generator's scene (`lerobot_keyframes.testing.render`, with its sensor noise), rendered
at 320x240 and scaled up to 640x480: a softer camera, whose frames encode to ~4.5 kB on average (front ~5.6 kB,
wrist ~3.3 kB), like lerobot's own 480p recordings (~5 kB), where the sample generator's sharp 640x480 renders
take ~15 kB. State and action are the scene's trajectory (x, y, z, gripper), so the motion modules have signals.

Run by `benchmarks/hub_streaming.py` with the lerobot tier's interpreter (Python 3.12, lerobot 0.6.1):

    python _lerobot_recording.py OUT --episodes 10 --seconds 20
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image


def record(out: Path, episodes: int, seconds: float, fps: int = 30) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from lerobot_keyframes.testing import render
    from lerobot_keyframes.testing.sample import SampleSpec, episode_plans, restore_scheduling

    spec = SampleSpec(episodes=episodes, width=320, height=240, episode_seconds=seconds, fps=fps)
    cameras = {"observation.images.front": "front", "observation.images.wrist": "wrist"}
    features = {
        "observation.state": {"dtype": "float32", "shape": (4,), "names": list(render.STATE_NAMES)},
        "action": {"dtype": "float32", "shape": (4,), "names": list(render.STATE_NAMES)},
        **{key: {"dtype": "video", "shape": (480, 640, 3), "names": ["height", "width", "channels"]}
           for key in cameras},
    }
    started = time.perf_counter()
    rec = LeRobotDataset.create("bench/lerobot480", fps=fps, features=features, root=out, use_videos=True,
                                robot_type="sample_arm")
    try:
        for plan in episode_plans(spec):
            traj = render.trajectory(plan)
            texture = render.table_texture(plan)
            cams = {key: render.make_camera(name, plan, traj, texture, spec.width, spec.height)
                    for key, name in cameras.items()}
            noise = {key: np.random.default_rng([spec.seed, plan.index, 23, *name.encode()])
                     for key, name in cameras.items()}
            state = traj.state(np.random.default_rng([spec.seed, plan.index, 31]))
            action = traj.action()
            for f in range(plan.length):
                frame = {"observation.state": state[f], "action": action[f], "task": plan.task.text}
                for key, cam in cams.items():
                    small = render.add_noise(cam.render(f), noise[key])
                    frame[key] = np.asarray(Image.fromarray(small).resize((640, 480), Image.BILINEAR))
                rec.add_frame(frame)
            rec.save_episode()
            print(f"episode {plan.index}: {plan.length} frames, {time.perf_counter() - started:.0f} s", flush=True)
        rec.finalize()
    finally:
        restore_scheduling()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    record(args.out, args.episodes, args.seconds)


if __name__ == "__main__":
    main()
