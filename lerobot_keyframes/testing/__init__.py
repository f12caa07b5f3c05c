"""Test helpers users can use too: the sample dataset generator and tiny offline Qwen-VL models."""

from __future__ import annotations
