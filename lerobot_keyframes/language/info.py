"""`meta/info.json` for an annotated dataset: both language features declared and the `say` tool added."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ..dataset.layout import INFO_PATH
from ..utils.files import atomic_write_text
from .schema import SAY_TOOL_NAME, SAY_TOOL_SCHEMA, is_say_tool, language_feature_info

logger = logging.getLogger(__name__)


def update_info(info: dict[str, Any]) -> dict[str, Any]:
    """info.json with both language features declared and the `say` tool added; every other key kept."""
    info = json.loads(json.dumps(info))
    features = info.setdefault("features", {})
    features.update(language_feature_info())
    tools = info.get("tools")
    if not isinstance(tools, list):
        tools = []
    names = [((t or {}).get("function") or {}).get("name") for t in tools if isinstance(t, dict)]
    if SAY_TOOL_NAME not in names:
        tools.append(json.loads(json.dumps(SAY_TOOL_SCHEMA)))
    elif not is_say_tool(tools[names.index(SAY_TOOL_NAME)]):
        logger.warning("meta/info.json declares a 'say' tool without a required string 'text' parameter; "
                       "kept as is, but speech atoms call say(text=...)")
    info["tools"] = tools
    return info


def write_info(root: Path, source: Path | None = None) -> None:
    """`root`'s meta/info.json with the language declarations, read from `source` (default: that same file)."""
    path = root / INFO_PATH
    info = json.loads((source or path).read_text(encoding="utf-8"))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(update_info(info), indent=4, ensure_ascii=False) + "\n")
