"""musicnn's TensorFlow checkpoints -> `MusiCNN` state dicts in safetensors files.

The wheel's graph names its layers by creation order (`conv2d_3`, `batch_normalization_7`):
`_LAYERS` pairs each with the PyTorch module it becomes. TF stores conv kernels as (rows,
cols, in, out) with rows = frames and cols = mel bands or channels, and dense kernels as
(in, out); PyTorch wants (out, in, bands, frames), (out, in, frames) and (out, in).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from genre_lab.models.musicnn import MusiCNN
from genre_lab.models.pretrained.musicnn_weights import MUSICNN_TAGS, SOURCE_FOLDERS, weights_path
from genre_lab.models.pretrained.tf_checkpoint import TFCheckpoint

#: TF layer -> (PyTorch module, kind), in the order musicnn's `build_musicnn` creates them.
_LAYERS: list[tuple[str, str, str]] = [
    ("batch_normalization", "input_bn", "bn"),
    ("conv2d", "timbral.0.conv", "conv2d"), ("batch_normalization_1", "timbral.0.bn", "bn"),
    ("conv2d_1", "timbral.1.conv", "conv2d"), ("batch_normalization_2", "timbral.1.bn", "bn"),
    ("conv2d_2", "temporal.0.conv", "conv2d"), ("batch_normalization_3", "temporal.0.bn", "bn"),
    ("conv2d_3", "temporal.1.conv", "conv2d"), ("batch_normalization_4", "temporal.1.bn", "bn"),
    ("conv2d_4", "temporal.2.conv", "conv2d"), ("batch_normalization_5", "temporal.2.bn", "bn"),
    ("conv2d_5", "midend.0.conv", "conv1d"), ("batch_normalization_6", "midend.0.bn", "bn"),
    ("conv2d_6", "midend.1.conv", "conv1d"), ("batch_normalization_7", "midend.1.bn", "bn"),
    ("conv2d_7", "midend.2.conv", "conv1d"), ("batch_normalization_8", "midend.2.bn", "bn"),
    ("batch_normalization_9", "pool_bn", "bn"),
    ("dense", "dense", "dense"),
    ("batch_normalization_10", "dense_bn", "bn"),
    ("dense_1", "tag_head", "dense"),
]

_BN = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}


def _kernel(array: np.ndarray, kind: str) -> np.ndarray:
    if kind == "conv2d":
        return array.transpose(3, 2, 1, 0)  # (frames, bands, in, out) -> (out, in, bands, frames)
    if kind == "conv1d":
        return array[:, :, 0, :].transpose(2, 1, 0)  # (frames, channels, 1, out) -> (out, channels, frames)
    return array.T  # dense (in, out) -> (out, in)


def convert_checkpoint(checkpoint: TFCheckpoint) -> dict[str, torch.Tensor]:
    """Every tensor of a MusiCNN state dict from a musicnn checkpoint; optimizer slots
    (`*/Adam*`, `beta*_power`) are left behind."""
    tensors: dict[str, np.ndarray] = {}
    for tf_name, module, kind in _LAYERS:
        if kind == "bn":
            for tf_part, part in _BN.items():
                tensors[f"{module}.{part}"] = checkpoint.tensor(f"{tf_name}/{tf_part}")
        else:
            tensors[f"{module}.weight"] = _kernel(checkpoint.tensor(f"{tf_name}/kernel"), kind)
            tensors[f"{module}.bias"] = checkpoint.tensor(f"{tf_name}/bias")
    state = MusiCNN(weights="none").state_dict()
    missing = {k for k in state if not k.endswith("num_batches_tracked")} - set(tensors)
    if missing:
        raise ValueError(f"{checkpoint.index_path}: no TF tensors for {sorted(missing)}")
    for name, array in tensors.items():
        if tuple(state[name].shape) != array.shape:
            raise ValueError(
                f"{checkpoint.index_path}: {name} has shape {array.shape}, MusiCNN expects {tuple(state[name].shape)}"
            )
        state[name] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    return state


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def convert_wheel(wheel: Path, out_dir: Path | None = None) -> list[Path]:
    """Convert MSD_musicnn and MTT_musicnn from the musicnn wheel (or an unpacked `musicnn/`
    package folder) into `out_dir` (default: this package's weights folder)."""
    wheel = Path(wheel)
    out_dir = Path(out_dir) if out_dir else weights_path("msd").parent
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        if wheel.is_file():
            if not zipfile.is_zipfile(wheel):
                raise ValueError(f"{wheel} is neither a wheel (zip) nor a musicnn package folder")
            with zipfile.ZipFile(wheel) as zf:
                members = [m for m in zf.namelist()
                           if any(m.startswith(f"musicnn/{f}/.") for f in SOURCE_FOLDERS.values())]
                for member in members:  # only the checkpoint files, by their fixed names
                    target = Path(tmp) / member
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(zf.read(member))
            root, source = Path(tmp) / "musicnn", {"wheel": wheel.name, "wheel_sha256": _sha256(wheel)}
        elif wheel.is_dir():
            root, source = wheel, {"folder": str(wheel)}
        else:
            raise FileNotFoundError(f"{wheel} does not exist")
        for which, folder in SOURCE_FOLDERS.items():
            ckpt_dir = root / folder
            checkpoint = TFCheckpoint(ckpt_dir)
            state = convert_checkpoint(checkpoint)
            files = {f"musicnn/{folder}/{p.name}": _sha256(p) for p in sorted(ckpt_dir.glob(".[id]*"))}
            metadata = {
                "model": f"musicnn {folder} (Pons & Serra 2019), for genre_lab.models.MusiCNN",
                "source": json.dumps(source),
                "source_files_sha256": json.dumps(files),
                "tags": json.dumps(MUSICNN_TAGS[which]),
                "license": "ISC, Copyright (c) Music Technology Group, Universitat Pompeu Fabra 2019",
            }
            target = out_dir / weights_path(which).name
            save_file(state, str(target), metadata=metadata)
            written.append(target)
    return written
