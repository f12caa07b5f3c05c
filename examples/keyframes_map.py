"""Exact keyframes with `datasets.map`: motion-aware keyframes (gripper changes, pauses) plus uniform ones,
decoded per camera, stored as `datasets.Image` lists with their real timestamps.

    python examples/keyframes_map.py
"""

from __future__ import annotations

import lerobot_keyframes as lk
from lerobot_keyframes.transform import KeyframeTransform

episodes = lk.load_episodes(lk.default_sample_dataset())
transform = KeyframeTransform.for_dataset(episodes, policy="motion+uniform:4")
features = transform.features(episodes.features)  # declared: Image lists, float32 timestamps, messages
keyframes = episodes.map(transform, batched=True, batch_size=2, num_proc=2, features=features)
camera = episodes[0]["camera_keys"][0]
row = keyframes[0]
print(f"episode 0, {camera}: keyframes at {[round(t, 3) for t in row[f'keyframe_timestamps.{camera}']]} s")
print(f"first keyframe image: {row[f'keyframes.{camera}'][0].size}")
# the same config maps again from the datasets cache, without decoding
again = episodes.map(transform, batched=True, batch_size=2, num_proc=2, features=features)
print("second map reused the cache:", again.cache_files == keyframes.cache_files)
