"""lerobot_keyframes: grounded language for LeRobot v3 datasets.

Exact keyframes from the videos, Qwen-VL annotation with structured output, and lerobot's two
language columns written back. Public names are imported lazily so `import lerobot_keyframes` is cheap.
"""

# ruff: noqa: F401 - the TYPE_CHECKING imports are re-exports for IDEs and type checkers
from __future__ import annotations

from typing import TYPE_CHECKING

from .utils.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {  # module -> the public names it defines
    ".dataset": "DatasetFormatError DatasetLayout load_episodes",
    ".frames": "make_frame_provider",
    ".transform": "KeyframeTransform KeyframesConfig extract_keyframes materialize_messages",
    ".annotate": "AnnotateConfig run_annotation",
    ".vlm": "VlmConfig make_backend",
    ".language": "validate_dataset write_language",
    ".hub.push": "push_dataset",
    ".review": "ReviewConfig build_review",
    ".testing.sample": "default_sample_dataset make_sample_dataset",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())

if TYPE_CHECKING:  # what IDEs and type checkers see
    from .annotate import AnnotateConfig, run_annotation
    from .dataset import DatasetFormatError, DatasetLayout, load_episodes
    from .frames import make_frame_provider
    from .hub.push import push_dataset
    from .language import validate_dataset, write_language
    from .review import ReviewConfig, build_review
    from .testing.sample import default_sample_dataset, make_sample_dataset
    from .transform import KeyframesConfig, KeyframeTransform, extract_keyframes, materialize_messages
    from .vlm import VlmConfig, make_backend
