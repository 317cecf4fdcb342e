"""The trained model as inference uses it: front end -> backbone -> linear head, rebuilt from a
`ModelSpec`. Training's LightningModule (`genre_lab.training.lightning_module.GenreClassifier`) holds one as `net`,
so the forward pass, the probabilities and the spec have one definition; model files hold this
class's state dict (the key layouts: `genre_lab.models.model_file`). Tagging, serving and ensembles
use GenreNet, and the predict command imports neither Lightning nor MLflow: they were ~4 s of
its start-up (`python -X importtime`).

On CPU (`for_inference`) the convolutions run in channels-last layout, with the batch norm after
each folded into its weights: in the default layout the first 3x3 conv of the one-channel
spectrogram cost more than the rest of the CRNN together. The default CRNN, one torch thread, 16
windows a batch: 0.81 ms per second of song eager against 0.56 channels-last; in another run
1.16 -> 0.72 ms per window when folding was added to channels-last; probabilities equal to 4e-8.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from genre_lab.models.model_file import TASKS, ModelSpec


class GenreNet(nn.Module):
    """(batch, samples) audio -> (batch, classes) logits: front end, backbone, linear head;
    `classes`, `task`, `config` and `spec` describe what it was trained on."""

    def __init__(self, frontend: nn.Module, backbone: nn.Module, classes: list[str],
                 config: dict[str, Any] | None = None, task: str = "multiclass") -> None:
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        self.task = task
        self.multilabel = task == "multilabel"
        self.frontend, self.backbone = frontend, backbone
        self.head = nn.Linear(backbone.out_dim, len(classes))
        self.classes = list(classes)
        self.config = config or {}

    @classmethod
    def from_spec(cls, spec: ModelSpec, device: str | None = None) -> GenreNet:
        """Build from a validated spec: every part comes from `genre_lab.registry`'s tables.
        With `device`, a front end with `backend=auto` holds only the implementation used there."""
        frontend = spec.build_frontend(device)
        net = cls(frontend, spec.build_backbone(frontend.n_bins), list(spec.classes), spec.to_dict(), spec.task)
        settings = spec.features["frontend"]
        if device is not None and hasattr(frontend, "impls") and frontend.backend != settings.get("backend", "auto"):
            # `backend=auto` built for one device: the other implementation's buffers are
            # not here, so this model's state dict is not a checkpoint's (see `exportable`).
            net.only_for = device
        return net

    #: The device this model was built to run on only (`from_spec(spec, device)`), else None.
    only_for: str | None = None

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        """A checkpoint's state dict, strictly; for a model built for one device, less the
        buffers of the front-end implementation it was built without (fixed by the settings)."""
        built = self.frontend.impls if self.only_for else {}
        unused = tuple(f"frontend.impls.{name}." for name in ("nnaudio", "torchaudio") if built and name not in built)
        self.load_state_dict({k: v for k, v in weights.items() if not (unused and k.startswith(unused))})

    @property
    def track_average(self) -> str:
        """How this model's window outputs become a track's (`ModelSpec.track_average`)."""
        return str((self.config.get("model") or {}).get("track_average", "probabilities"))

    @property
    def spec(self) -> ModelSpec:
        """The runtime contract this model was built from (see `genre_lab.models.model_file`)."""
        return ModelSpec.from_dict(self.config, "model config")

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(batch, samples) audio -> (batch, classes) logits."""
        return self.head(self.backbone(self.frontend(wave)))

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Class distribution (softmax) or independent tag probabilities (sigmoid), in float32."""
        return logits.float().sigmoid() if self.multilabel else logits.float().softmax(1)


def for_inference(model: nn.Module, device: torch.device) -> nn.Module:
    """`model` on `device` in eval mode. On CPU, a copy with every batch norm that follows a
    convolution folded into it and the 4-D weights channels-last (see above): the caller's
    model is left as it was."""
    if device.type != "cpu":
        return model.to(device).eval()
    model = copy.deepcopy(model).to(device).eval()
    model.inference_copy = True  # see `exportable`
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                if isinstance(module[i], nn.Conv2d) and isinstance(module[i + 1], nn.BatchNorm2d):
                    module[i] = fuse_conv_bn_eval(module[i], module[i + 1])
                    module[i + 1] = nn.Identity()
    return model.to(memory_format=torch.channels_last)


def exportable(model: nn.Module) -> bool:
    """Whether `model`'s state dict is a checkpoint's, loadable anywhere: not a model built for
    one device (`GenreNet.from_spec(spec, device)`) nor an inference copy (`for_inference`,
    `Tagger.model`: batch norms folded)."""
    return not getattr(model, "inference_copy", False) and not any(
        getattr(m, "only_for", None) for m in model.modules())
