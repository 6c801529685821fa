"""Model checkpoints: weights as safetensors plus a JSON sidecar; loading never unpickles.

`save_model("runs/a/model", net, arch="diconvae", arch_config=net.config, meta={...})` writes
`runs/a/model.safetensors` and `runs/a/model.json`:

    {"format": "usdenoise-checkpoint", "format_version": 1, "kind": "denoiser",
     "arch": "diconvae", "config": {...}, "package_version": "0.1.0",
     "weights": "model.safetensors", "sha256": "...", "metrics": {...}, "meta": {...}}

Both files are written to temporary names in the target folder and renamed into place
(weights first, sidecar last), so a crash never leaves a half-written file; the sidecar's
sha256 of the weights catches a sidecar/weights mismatch or a corrupted weights file.

`load_model(path)` accepts the `.safetensors`, the `.json`, the common stem `X`, or a run
folder that contains `model.safetensors`; it rebuilds the network from the sidecar and
returns `(model, sidecar)`.
A pickled `.pth`/`.pt` is refused unless `allow_pickle=True`, and even then it is read with
`torch.load(weights_only=True)` (tensors only, no code): a pickle that would run code is
refused with one line and runs nothing.

Before any tensor is read, the safetensors header (8-byte length + JSON) is checked against
the file: every tensor's shape x dtype must match its byte range and lie inside the file, so
a header declaring a 144 TB tensor is refused at once. The network is first built on the
`meta` device (no memory) and refused when its sidecar config asks for more weights than the
file holds. Files get the permissions of ordinary new files (the umask), like the sidecar.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from usdenoise import __version__
from usdenoise.core.errors import UsdenoiseError
from usdenoise.core.files import apply_umask, make_temp_file
from usdenoise.models import build_network
from usdenoise.models.segmenters import segmenter_from_config

FORMAT = "usdenoise-checkpoint"
FORMAT_VERSION = 1
KINDS = ("denoiser", "segmenter")
PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".pkl")

#: kind -> function(arch, config) -> nn.Module.
BUILDERS: dict[str, Callable[[str, dict[str, Any]], nn.Module]] = {}


def _build_denoiser(arch: str, config: dict[str, Any]) -> nn.Module:

    return build_network(arch, **config)


def _build_segmenter(arch: str, config: dict[str, Any]) -> nn.Module:

    return segmenter_from_config(arch, config)


BUILDERS["denoiser"] = _build_denoiser
BUILDERS["segmenter"] = _build_segmenter


def unwrap_model(model: nn.Module) -> nn.Module:
    """Strip DDP (`.module`) and torch.compile (`._orig_mod`) wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod  # type: ignore[assignment]
        elif isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
            model = model.module
        else:
            return model


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _stem(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        return p.with_suffix("")
    return p


def _temp_in(folder: Path, suffix: str) -> Path:

    return make_temp_file(folder, suffix=suffix)


def save_model(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    arch: str,
    arch_config: Mapping[str, Any],
    meta: Mapping[str, Any] | None = None,
    kind: str = "denoiser",
    metrics: Mapping[str, Any] | None = None,
) -> Path:
    """Write `X.safetensors` + `X.json` atomically; returns the `.safetensors` path.

    `path` is `X`, `X.safetensors` or `X.json`. `meta` is free-form JSON-serialisable data
    (epoch, data spec, loss, ...); `metrics` are the validation figures to record.
    """
    from safetensors.torch import save_file

    if kind not in KINDS:
        raise UsdenoiseError(f"save_model: kind {kind!r} is not one of {list(KINDS)}")
    stem = _stem(path)
    weights_path = stem.with_name(stem.name + ".safetensors")
    sidecar_path = stem.with_name(stem.name + ".json")
    folder = weights_path.parent
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().to("cpu").contiguous().clone()
        for k, v in unwrap_model(model).state_dict().items()
    }
    sidecar: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "arch": arch,
        "config": dict(arch_config),
        "package_version": __version__,
        "weights": weights_path.name,
        "sha256": "",
        "metrics": dict(metrics or {}),
        "meta": dict(meta or {}),
    }
    try:
        text = json.dumps(sidecar, indent=2, sort_keys=False, default=str)
    except (TypeError, ValueError) as exc:
        raise UsdenoiseError(f"{sidecar_path}: metadata is not JSON-serialisable: {exc}") from None
    tmp_weights = _temp_in(folder, ".safetensors")
    tmp_sidecar = _temp_in(folder, ".json")
    try:
        save_file(state, str(tmp_weights), metadata={"format": FORMAT, "arch": arch, "kind": kind})
        apply_umask(tmp_weights)  # safetensors writes owner-only files; make it like the sidecar
        sidecar["sha256"] = _sha256(tmp_weights)
        text = json.dumps(sidecar, indent=2, default=str)
        with open(tmp_sidecar, "w", encoding="utf-8") as f:
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_weights, weights_path)
        os.replace(tmp_sidecar, sidecar_path)
    finally:
        for tmp in (tmp_weights, tmp_sidecar):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    return weights_path


def read_sidecar(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a checkpoint's JSON sidecar (`X.json`)."""
    p = Path(path)
    if not p.is_file():
        raise UsdenoiseError(f"{p}: checkpoint sidecar not found (expected next to the weights)")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsdenoiseError(f"{p}: checkpoint sidecar is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UsdenoiseError(f"{p}: not a usdenoise checkpoint sidecar (no format {FORMAT!r})")
    for key in ("kind", "arch", "config"):
        if key not in data:
            raise UsdenoiseError(f"{p}: checkpoint sidecar lacks the {key!r} entry")
    if not isinstance(data["config"], dict):
        raise UsdenoiseError(f"{p}: checkpoint sidecar 'config' is not an object")
    return data


def _resolve(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """-> (weights file, sidecar file)."""
    p = Path(path)
    stem_file = p.with_name(p.name + ".safetensors")
    if not p.exists() and p.suffix not in (".safetensors", ".json") and stem_file.is_file():
        p = stem_file  # "runs/a/model" for runs/a/model.safetensors
    if p.is_dir():  # a run folder: its best epoch when training kept one, else the latest
        best = p / "model_best.safetensors"
        p = best if best.is_file() else p / "model.safetensors"
        if not p.is_file():
            raise UsdenoiseError(f"{p.parent}: run folder has no model.safetensors")
    if p.suffix == ".json":
        sidecar = p
        weights = p.with_suffix(".safetensors")
        if not weights.is_file():
            try:
                name = json.loads(p.read_text(encoding="utf-8")).get("weights")
            except (OSError, ValueError, AttributeError):
                name = None
            if isinstance(name, str) and (p.parent / name).is_file():
                weights = p.parent / name
    else:
        weights = p
        sidecar = p.with_suffix(".json")
    if not weights.is_file():
        raise UsdenoiseError(f"{weights}: checkpoint file not found")
    return weights, sidecar


#: bytes per element of every safetensors dtype
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
               "I16": 2, "U16": 2, "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4,
               "I64": 8, "U64": 8, "F64": 8, "C64": 8}
MAX_HEADER_BYTES = 100_000_000  # the limit safetensors itself applies


def read_safetensors_header(path: str | os.PathLike[str], data: bytes | None = None
                            ) -> dict[str, Any]:
    """The JSON header of a safetensors file, checked against the file before any tensor is
    read: each tensor's shape x dtype equals its byte range, and every range lies inside the
    file. Returns the header (tensor name -> {dtype, shape, data_offsets}; `__metadata__`).
    `data`: the file's bytes when they are already in memory."""
    path = Path(path)
    try:
        if data is None:
            size = path.stat().st_size
            with open(path, "rb") as fh:
                head = fh.read(8)
                length = int.from_bytes(head, "little") if len(head) == 8 else -1
                raw = fh.read(length) if 0 <= length <= min(MAX_HEADER_BYTES, size) else b""
        else:
            size = len(data)
            length = int.from_bytes(data[:8], "little") if size >= 8 else -1
            raw = data[8:8 + length] if 0 <= length <= MAX_HEADER_BYTES else b""
    except OSError as exc:
        raise UsdenoiseError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if length < 2 or length > MAX_HEADER_BYTES or len(raw) != length:
        raise UsdenoiseError(f"{path}: corrupted or truncated safetensors file (header length "
                             f"{length} does not fit a {size}-byte file)")
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise UsdenoiseError(f"{path}: corrupted safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise UsdenoiseError(f"{path}: corrupted safetensors file (header is not an object)")
    body = size - 8 - length
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape = entry["dtype"], [int(d) for d in entry["shape"]]
            start, end = (int(v) for v in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise UsdenoiseError(f"{path}: corrupted safetensors file (tensor {name!r} has no "
                                 "dtype, shape or offsets)") from None
        if dtype not in DTYPE_BYTES or any(d < 0 for d in shape):
            raise UsdenoiseError(f"{path}: tensor {name!r} has an unsupported dtype {dtype!r} "
                                 f"or shape {shape}")
        nbytes = math.prod(shape) * DTYPE_BYTES[dtype]
        if not 0 <= start <= end <= body or end - start != nbytes:
            raise UsdenoiseError(
                f"{path}: corrupted or truncated safetensors file (tensor {name!r} declares "
                f"shape {shape}, {nbytes:,} bytes; the file holds {max(body, 0):,} bytes of data)")
    return header


def _header_numel(header: Mapping[str, Any]) -> int:
    return sum(math.prod(int(d) for d in e["shape"]) for k, e in header.items()
               if k != "__metadata__")


def _read_safetensors(path: Path, device: str | torch.device) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    read_safetensors_header(path)  # sizes checked against the file before any allocation
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsdenoiseError(
            f"{path}: corrupted or truncated safetensors file ({first})"
        ) from None


def _read_pickle(path: Path, device: str | torch.device) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(str(path), map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure of the restricted unpickler
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsdenoiseError(f"{path}: cannot read as a weights-only pickle ({first})") from None
    for key in ("state_dict", "model", "model_state"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UsdenoiseError(f"{path}: pickle does not hold a state dict of tensors")
    return obj


def load_model(
    path: str | os.PathLike[str],
    *,
    kind: str | None = None,
    map_location: str | torch.device = "cpu",
    allow_pickle: bool = False,
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a network from `X.safetensors` + `X.json` (or the `.json`, or a run folder).

    Returns `(model in eval mode on map_location, sidecar dict)`; the sidecar holds `arch`,
    `config`, `kind`, `package_version`, `metrics` and `meta`. `kind` ("denoiser" or
    "segmenter") rejects a checkpoint of the other kind.
    """
    p = Path(path)
    if p.suffix.lower() in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise UsdenoiseError(
                f"{p}: refusing a pickled {p.suffix} checkpoint (pickles can run code); "
                "use a .safetensors checkpoint, or allow a weights-only load explicitly"
            )
        weights, sidecar_path = p, p.with_suffix(".json")
        if not weights.is_file():
            raise UsdenoiseError(f"{weights}: checkpoint file not found")
    else:
        weights, sidecar_path = _resolve(p)
    if not sidecar_path.is_file():
        raise UsdenoiseError(
            f"{weights}: checkpoint sidecar {sidecar_path.name} is missing "
            "(it records the architecture needed to rebuild the network)"
        )
    sidecar = read_sidecar(sidecar_path)
    if kind is not None and sidecar["kind"] != kind:
        raise UsdenoiseError(
            f"{weights}: checkpoint is a {sidecar['kind']}, not a {kind}"
        )
    if weights.suffix.lower() in PICKLE_SUFFIXES:
        state = _read_pickle(weights, map_location)
    else:
        state = _read_safetensors(weights, map_location)
        expected = sidecar.get("sha256")
        if expected and _sha256(weights) != expected:
            raise UsdenoiseError(
                f"{weights}: weights do not match the sha256 in {sidecar_path.name} "
                "(corrupted file, or weights and sidecar from different runs)"
            )
    builder = BUILDERS.get(sidecar["kind"])
    if builder is None:
        raise UsdenoiseError(
            f"{sidecar_path}: checkpoint kind {sidecar['kind']!r} is not supported "
            f"(known: {', '.join(sorted(BUILDERS))})"
        )
    stored = sum(int(v.numel()) for v in state.values())
    _check_config_size(builder, sidecar, sidecar_path, stored)
    try:
        model = builder(sidecar["arch"], dict(sidecar["config"]))
    except UsdenoiseError as exc:
        raise UsdenoiseError(f"{sidecar_path}: {exc}") from None
    except (TypeError, ValueError, RuntimeError) as exc:
        raise UsdenoiseError(f"{sidecar_path}: cannot build {sidecar['arch']!r} from its "
                             f"config ({' '.join(str(exc).split())[:200]})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        if len(detail) > 200:
            detail = detail[:200] + "..."
        raise UsdenoiseError(
            f"{weights}: checkpoint from another architecture: its tensors do not fit "
            f"{sidecar['arch']} with the config in {sidecar_path.name} ({detail})"
        ) from None
    model.to(map_location)
    model.eval()
    return model, sidecar


def _check_config_size(builder: Callable[[str, dict[str, Any]], nn.Module],
                       sidecar: Mapping[str, Any], sidecar_path: Path, stored: int) -> None:
    """Build the network on the `meta` device (no memory) and refuse a sidecar config that
    asks for more weights than the file holds (an absurd width would allocate gigabytes)."""
    try:
        with torch.device("meta"):
            probe = builder(sidecar["arch"], dict(sidecar["config"]))
    except UsdenoiseError as exc:
        raise UsdenoiseError(f"{sidecar_path}: {exc}") from None
    except Exception:  # noqa: BLE001 - a builder that cannot run on meta: the real build decides
        return
    wanted = sum(int(t.numel()) for t in probe.state_dict().values())
    if wanted > stored:
        raise UsdenoiseError(
            f"{sidecar_path.with_suffix('.safetensors')}: checkpoint from another architecture "
            f"or an absurd config: {sidecar['arch']} with the config in {sidecar_path.name} "
            f"needs {wanted:,} weights, the file holds {stored:,}")


def resolve_segmenter(path: str | Path) -> Path:
    """A run folder means its best checkpoint (`model_best`), else the file as given."""
    p = Path(path)
    if p.is_dir() and (p / "model_best.safetensors").is_file():
        return p / "model_best.safetensors"
    return p


def segmenter_input_size(sidecar: Mapping[str, Any]) -> Any:
    """The size a segmenter was trained at (`segment train --size`), from its sidecar: images
    are resized to it before prediction. None when it was trained at the images' own size."""
    meta = sidecar.get("meta", {})
    return meta.get("image_size") or meta.get("config", {}).get("image_size")


def load_segmenter(path: str | Path, *, device: str = "cpu", option: str = "--segmenter",
                   denoiser_option: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """`load_model(kind="segmenter")` with a message that names the `option` the path came
    from, says what was given instead and, for a denoiser, the `denoiser_option` it belongs
    to (where the command has one)."""
    resolved = resolve_segmenter(path)
    weights = resolved if resolved.suffix == ".safetensors" else None
    sidecar_path = (resolved.with_suffix(".json") if weights is not None
                    else (resolved / "model.json" if resolved.is_dir() else None))
    if sidecar_path is not None and sidecar_path.is_file():
        kind = read_sidecar(sidecar_path).get("kind")
        if kind != "segmenter":
            hint = (f"; a denoiser goes to {denoiser_option}"
                    if denoiser_option and kind == "denoiser" else "")
            raise UsdenoiseError(
                f"{option} {path}: checkpoint is a {kind}, not a segmenter (train one with "
                f"`usdenoise segment train`{hint})")
    return load_model(resolved, kind="segmenter", map_location=device)
