"""Exact keyframes with `datasets.map`: motion-aware keyframes (gripper changes, pauses) plus uniform ones,
decoded per camera, stored as `datasets.Image` lists with their real timestamps.

    python examples/keyframes_map.py
"""

from __future__ import annotations

import time

import lerobot_keyframes as lk
from lerobot_keyframes.transform import KeyframeTransform

episodes = lk.load_episodes(lk.default_sample_dataset())
transform = KeyframeTransform.for_dataset(episodes, policy="motion+uniform:4")

# the plain datasets way: declared features (Image lists, float32 timestamps, messages), 2 worker processes
features = transform.features(episodes.features)
keyframes = episodes.map(transform, batched=True, batch_size=2, num_proc=2, features=features)
camera = episodes[0]["camera_keys"][0]
row = keyframes[0]
print(f"episode 0, {camera}: keyframes at {[round(t, 3) for t in row[f'keyframe_timestamps.{camera}']]} s")
print(f"first keyframe image: {row[f'keyframes.{camera}'][0].size}")

# transform.map names a cache file by fingerprint: the second call loads it and decodes nothing
first = transform.map(episodes, num_proc=2)
started = time.perf_counter()
again = transform.map(episodes, num_proc=2)
print(f"second transform.map loaded {again.cache_files[0]['filename'].rsplit('/', 1)[-1]} "
      f"in {time.perf_counter() - started:.2f} s (same file: {again.cache_files == first.cache_files})")
