"""A resumable training state in one safetensors file, never pickled.

`save_train_state(path, tree)` takes a nested structure of dicts, lists, tuples, numbers,
strings and tensors (model and optimizer state dicts, scheduler state, RNG states, loop
counters). Tensors go into the safetensors body under their path in the tree
(`optimizer/state/3/exp_avg`); everything else is JSON in the file's metadata header, with
tensors replaced by references. One file and one rename: a crash mid-write leaves the previous
state untouched. `load_train_state` rebuilds the same structure (tuples and integer dict keys
included) and raises a one-line UsdenoiseError for a missing, truncated or foreign file.

Before a new state replaces the old one, the old one is kept as `NAME.prev.safetensors`; a
state that turns out truncated or corrupt on resume (a full disk, a copy cut short) is then
replaced by that previous one, with a warning (`load_train_state(..., fallback=True)`).
The header is checked against the file size before any tensor is read
(`read_safetensors_header`), and the header holds the sha256 of the tensor bytes, so a
state cut short or altered in place is refused too. `clean_run_folder(run)` removes the
temporary files a killed run left in its folder; the loop calls it when a run starts.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import warnings
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from usdenoise.checkpoint import read_safetensors_header
from usdenoise.core.errors import UsdenoiseError
from usdenoise.core.files import atomic_write, clean_stale_temps

FORMAT = "usdenoise-train-state/1"
DIGEST_KEY = "usdenoise-sha256"  # metadata entry: sha256 of the bytes after the header
_UNSET_DIGEST = "0" * 64  # written first, then replaced in place (the same length)


def save_train_state(path: str | Path, tree: dict[str, Any]) -> None:
    """Write `tree` atomically to `path` (a `.safetensors` file)."""

    tensors: dict[str, torch.Tensor] = {}
    structure = _encode(tree, "", tensors)
    header = json.dumps({"format": FORMAT, "tree": structure}, allow_nan=False)
    data = _with_digest(save_safetensors_bytes(
        tensors, metadata={"usdenoise": header, DIGEST_KEY: _UNSET_DIGEST}))
    path = Path(path)
    with atomic_write(path) as tmp:
        Path(tmp).write_bytes(data)
        if path.is_file():  # the last good state stays as the fallback of a resume
            _keep_previous(path)


def _body_start(data: bytes) -> int:
    return 8 + int.from_bytes(data[:8], "little")


def _digest_field(digest: str) -> bytes:
    return json.dumps({DIGEST_KEY: digest}, separators=(",", ":"))[1:-1].encode()


def _with_digest(data: bytes) -> bytes:
    """`data` with the placeholder digest in its header replaced by the body's sha256; the
    header keeps its length, so the tensor offsets stay valid."""
    start = _body_start(data)
    head, placeholder = data[:start], _digest_field(_UNSET_DIGEST)
    if head.count(placeholder) != 1:  # cannot happen (strings in the tree are escaped)
        return data
    digest = hashlib.sha256(memoryview(data)[start:]).hexdigest()
    return head.replace(placeholder, _digest_field(digest)) + data[start:]


def _keep_previous(path: Path) -> None:
    """Link (or copy) the current state to `previous_state_path` atomically; the current
    file stays in place until the new one replaces it."""
    previous = previous_state_path(path)
    tmp = previous.with_name(f".{previous.name}.{os.getpid():08x}"[:200] + ".tmp")
    try:
        try:
            os.link(path, tmp)
        except OSError:
            shutil.copyfile(path, tmp)
        os.replace(tmp, previous)
    except OSError:
        pass  # no fallback this time; the new state is still written
    finally:
        if tmp.exists():
            tmp.unlink()


def previous_state_path(path: str | Path) -> Path:
    """Where `save_train_state` keeps the state it replaced: `NAME.prev.safetensors`."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def load_train_state(path: str | Path, *, fallback: bool = True) -> dict[str, Any]:
    """Read a file written by `save_train_state`; when it is truncated or corrupt and the
    previous state exists (`fallback`), that one is read instead, with a warning."""
    path = Path(path)
    try:
        return _load_train_state(path)
    except UsdenoiseError as exc:
        previous = previous_state_path(path)
        if not fallback or not path.is_file() or not previous.is_file():
            raise
        try:
            tree = _load_train_state(previous)
        except UsdenoiseError:
            raise exc from None
        warnings.warn(f"{exc}; resuming from the previous state {previous.name}", stacklevel=2)
        return tree


def clean_run_folder(run: str | Path) -> list[Path]:
    """Remove the temporary files (`.tmp-*`, `.NAME.XXXXXXXX.tmp*`) a killed run left in
    its folder; call it once when a run starts, before it writes. Returns what went."""
    return clean_stale_temps(run)


def _load_train_state(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsdenoiseError(f"{path}: no training state to resume from") from None
    except OSError as exc:
        raise UsdenoiseError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:  # a lying or truncated header: one line, before any allocation
        safetensors_header = read_safetensors_header(path, data)
    except UsdenoiseError as exc:
        detail = str(exc).split(": ", 1)[-1]
        raise UsdenoiseError(f"{path}: not a usdenoise training state (corrupt or truncated: "
                             f"{detail})") from None
    metadata = safetensors_header.get("__metadata__")
    recorded = metadata.get(DIGEST_KEY) if isinstance(metadata, dict) else None
    if recorded not in (None, _UNSET_DIGEST):  # states written before the digest have none
        actual = hashlib.sha256(memoryview(data)[_body_start(data):]).hexdigest()
        if actual != recorded:
            raise UsdenoiseError(f"{path}: not a usdenoise training state (corrupt: the sha256 "
                                 "of its tensors does not match its header)")
    try:
        tensors = load_safetensors_bytes(data)
        header = _read_metadata(data)
        meta = json.loads(header["usdenoise"])
    except (SafetensorError, ValueError, KeyError, TypeError):
        raise UsdenoiseError(
            f"{path}: not a usdenoise training state (corrupt or truncated)"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "tree" not in meta:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise UsdenoiseError(f"{path}: unsupported training-state format {found!r}")
    try:
        return _decode(meta["tree"], tensors)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise UsdenoiseError(f"{path}: malformed training state (its tree refers to missing "
                             "tensors or has an unknown entry)") from None


def _read_metadata(data: bytes) -> dict[str, str]:
    """The `__metadata__` table of a safetensors header (8-byte length + JSON)."""
    size = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + size])["__metadata__"]


def _encode(value: Any, key: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        name = key or "tensor"
        tensors[name] = value.detach().to("cpu").contiguous().clone()
        return {"__tensor__": name}
    if isinstance(value, np.ndarray):
        name = key or "array"
        tensors[name] = torch.from_numpy(np.ascontiguousarray(value).copy())
        return {"__ndarray__": name}
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: _encode(v, f"{key}/{k}" if key else k, tensors) for k, v in value.items()}
        items = []
        for k, v in value.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"cannot store a dict key of type {type(k).__name__}")
            items.append([k, _encode(v, f"{key}/{k}" if key else str(k), tensors)])
        return {"__items__": items}
    if isinstance(value, (list, tuple)):
        encoded = [_encode(v, f"{key}/{i}", tensors) for i, v in enumerate(value)]
        return {"__tuple__": encoded} if isinstance(value, tuple) else encoded
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store {type(value).__name__} at {key!r} in a training state")


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        return tensors[value["__tensor__"]]
    if "__ndarray__" in value:
        return tensors[value["__ndarray__"]].numpy()
    if "__tuple__" in value:
        return tuple(_decode(v, tensors) for v in value["__tuple__"])
    if "__float__" in value:
        return float(value["__float__"])
    if "__items__" in value:
        return {k: _decode(v, tensors) for k, v in value["__items__"]}
    return {k: _decode(v, tensors) for k, v in value.items()}


def capture_rng(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """State of every random source a run uses: torch (CPU and CUDA), numpy, python, ours."""
    # legacy=True (the default) gives this tuple; NumPy's stubs also allow the dict form
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = cast(
        tuple[str, np.ndarray, int, int, float], np.random.get_state())
    py_version, py_state, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": np_kind,
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "python": {
            "version": py_version,
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss": py_gauss,
        },
        "generators": {name: g.get_state() for name, g in generators.items()},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    """Put back what `capture_rng` saved (CUDA states only when the same GPUs exist)."""
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["gauss"],
        )
    )
    python_state = state["python"]
    random.setstate(
        (
            python_state["version"],
            tuple(int(v) for v in python_state["state"].tolist()),
            python_state["gauss"],
        )
    )
    for name, generator in generators.items():
        generator.set_state(state["generators"][name])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


STATE_FILE = "train_state.safetensors"


def run_config(run: str | Path) -> dict[str, Any]:
    """The settings the run in `run` was started with, so `--resume RUN` need not repeat them.
    A fallback to the previous state is not announced here: the resume that follows warns."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load_train_state(Path(run) / STATE_FILE)["config"]
