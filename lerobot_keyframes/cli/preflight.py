"""The checks `annotate` runs before any decode or model call: extras, source, model, server.

Each failure is an exception with one actionable line (the CLI prints it and exits 2).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .logs import warn_once

if TYPE_CHECKING:
    from ..annotate.config import AnnotateConfig
    from ..vlm.config import VlmConfig


def preflight(config: AnnotateConfig, vlm: VlmConfig) -> None:
    """Checks that need no decode and no model call: extras installed, model reachable, server answering."""
    import importlib.util

    from ..vlm.errors import MissingExtraError

    check_source(config, vlm.camera_key)
    module = {"transformers": "transformers", "vllm": "vllm", "openai": "openai"}[vlm.backend]
    if importlib.util.find_spec(module) is None:
        raise MissingExtraError(vlm.backend, module)
    if config.executor.engine == "ray" and importlib.util.find_spec("ray") is None:
        raise ImportError("--executor.engine=ray needs Ray: pip install 'lerobot_keyframes[ray]'")
    from ..annotate.modules import run_modules

    if not run_modules(config).asks_model:
        return  # motion only: no model is asked anything
    if vlm.backend == "openai" and not vlm.auto_serve:
        probe_openai_server(vlm)
    else:  # loaded here, or by the vLLM server auto_serve starts
        check_model(vlm.model_id, vlm.revision)


def check_source(config: AnnotateConfig, camera_key: str | None) -> None:
    """The source exists and is a LeRobot v3 dataset, and `--vlm.camera_key` names one of its cameras."""
    from ..dataset.layout import DatasetLayout
    from ..dataset.source import resolve_source

    source = resolve_source(config.root or config.repo_id, revision=config.revision)
    cameras = DatasetLayout.open(source.root).camera_keys
    if camera_key and camera_key not in cameras:
        full = [c for c in cameras if c.rsplit(".", 1)[-1] == camera_key]
        hint = f"; did you mean --vlm.camera_key={full[0]}?" if len(full) == 1 else ""
        raise ValueError(f"--vlm.camera_key={camera_key} is not a camera of the dataset{hint} "
                         f"(cameras: {', '.join(cameras)})")


def check_model(model_id: str, revision: str | None = None) -> None:
    """A model directory with a config.json, a cached Hub model, or a Hub model that exists (one request)."""
    path = Path(model_id).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ValueError(f"--vlm.model_id={model_id}: {path} has no config.json; not a model directory")
        return
    if model_id.startswith(("/", ".", "~")) or model_id.count("/") != 1:
        raise ValueError(f"--vlm.model_id={model_id}: no such directory, and not a Hub model id of the form 'org/name'")
    import huggingface_hub.constants as hf_constants
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(model_id, "config.json", revision=revision), str):
        return
    if hf_constants.HF_HUB_OFFLINE:
        raise ValueError(f"--vlm.model_id={model_id}: not in the Hugging Face cache and HF_HUB_OFFLINE=1; download "
                         f"it first (hf download {model_id}) or pass a local model directory")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    from ..hub.errors import HubError, network_message, transport_errors

    try:  # huggingface_hub's own timeout for metadata requests (its client has none): a silent Hub is an error
        HfApi().model_info(model_id, revision=revision, timeout=hf_constants.HF_HUB_ETAG_TIMEOUT)
    except transport_errors() as exc:
        raise HubError(f"--vlm.model_id={model_id}: "
                       + network_message(exc, fix="set HF_HUB_OFFLINE=1 to use a model already in the Hugging Face "
                                         "cache, or pass a local model directory as --vlm.model_id")) from None
    except GatedRepoError:
        raise ValueError(f"--vlm.model_id={model_id}: the model is gated; accept its terms on the Hub and log in "
                         "(hf auth login)") from None
    except RepositoryNotFoundError:
        raise ValueError(f"--vlm.model_id={model_id}: no such model on the Hub (or it is private: hf auth login)") \
            from None
    except RevisionNotFoundError:
        raise ValueError(f"--vlm.model_id={model_id}: the model has no revision {revision!r} (--vlm.revision)") \
            from None


def probe_openai_server(vlm: VlmConfig, timeout: float = 5.0) -> None:
    """One quick `GET <api_base>/models` per server: a server that does not answer is an error before any work."""
    import urllib.error
    import urllib.request

    key = vlm.api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
    for base in vlm.api_bases:
        request = urllib.request.Request(base + "/models", headers={"Authorization": f"Bearer {key}"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (the user's URL)
                body = response.read()
        except urllib.error.HTTPError:
            continue  # it answers (401/404 from a proxy without /models is still a server)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ConnectionError(
                f"--vlm.api_base={base}: no OpenAI-compatible server answers ({reason}); start one (e.g. vllm "
                f"serve {vlm.model_id} --port {base.rsplit(':', 1)[-1].split('/')[0]}) or pass "
                "--vlm.auto_serve=true to start it here") from None
        try:
            served = [m.get("id") for m in json.loads(body).get("data", [])]
        except (ValueError, AttributeError):
            continue
        if served and vlm.model_id not in served:
            warn_once(f"--vlm.model_id={vlm.model_id} is not among the models {base} serves {served}")
