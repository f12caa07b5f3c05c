"""Hub failures as `HubError`s whose message says what happened and what to do; tokens never appear in them.

The translation lives in `utils.hub_errors`, below every folder that talks to the Hub (`dataset` reads from it
too); these are its names for the `hub` folder and its callers.
"""

from __future__ import annotations

from ..utils.hub_errors import (
    BEARER_PATTERN,
    OFFLINE_FIX,
    TOKEN_PATTERN,
    HubError,
    hub_errors,
    network_message,
    redact,
    remote_entry_not_found_error,
    translate,
    transport_errors,
)

__all__ = [
    "BEARER_PATTERN",
    "OFFLINE_FIX",
    "TOKEN_PATTERN",
    "HubError",
    "hub_errors",
    "network_message",
    "redact",
    "remote_entry_not_found_error",
    "translate",
    "transport_errors",
]
