"""Read a LeRobot v3 dataset into an episode table (a `datasets.Dataset`, one row per episode).

    python examples/read_episodes.py [ROOT_OR_REPO_ID]

Without an argument it uses the embedded sample dataset (generated once into the user cache).
"""

from __future__ import annotations

import sys

import lerobot_keyframes as lk

source = sys.argv[1] if len(sys.argv) > 1 else lk.default_sample_dataset()
episodes = lk.load_episodes(source)
print(f"{episodes.num_rows} episodes, cameras {episodes[0]['camera_keys']}")
for row in episodes:
    cam = row["cameras"][0]
    print(
        f"episode {row['episode_index']}: {row['length']} frames at {row['fps']:g} fps, task {row['task']!r}, "
        f"{cam['key']} in {cam['path']} from {cam['from_timestamp']:.3f} s"
    )
