"""lerobot_keyframes: grounded language for LeRobot v3 datasets.

Exact keyframes from the videos, Qwen-VL annotation with structured output, and lerobot's two
language columns written back. Public names are imported lazily so `import lerobot_keyframes` is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .utils.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "load_episodes": ".dataset",
    "DatasetLayout": ".dataset",
    "DatasetFormatError": ".dataset",
    "make_frame_provider": ".frames",
    "KeyframeTransform": ".transform",
    "KeyframesConfig": ".transform",
    "extract_keyframes": ".transform",
    "materialize_messages": ".transform",
    "AnnotateConfig": ".annotate",
    "run_annotation": ".annotate",
    "VlmConfig": ".vlm",
    "make_backend": ".vlm",
    "validate_dataset": ".language",
    "write_language": ".language",
    "push_dataset": ".hub.push",
    "ReviewConfig": ".review",
    "build_review": ".review",
    "make_sample_dataset": ".testing.sample",
    "default_sample_dataset": ".testing.sample",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())

if TYPE_CHECKING:  # what IDEs and type checkers see
    from .annotate import AnnotateConfig, run_annotation  # noqa: F401
    from .dataset import DatasetFormatError, DatasetLayout, load_episodes  # noqa: F401
    from .frames import make_frame_provider  # noqa: F401
    from .hub.push import push_dataset  # noqa: F401
    from .language import validate_dataset, write_language  # noqa: F401
    from .review import ReviewConfig, build_review  # noqa: F401
    from .testing.sample import default_sample_dataset, make_sample_dataset  # noqa: F401
    from .transform import KeyframesConfig, KeyframeTransform, extract_keyframes, materialize_messages  # noqa: F401
    from .vlm import VlmConfig, make_backend  # noqa: F401
