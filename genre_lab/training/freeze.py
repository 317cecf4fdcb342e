"""Which parts of a model train: `model.freeze=none|backbone|all_but_last_block`.

Fine-tuning a pretrained backbone (`init_from=...`, `model=musicnn model.weights=msd`) either
trains everything, only the new head (a linear probe: `backbone`, the front end frozen with
it), or the head plus the backbone's last stage (`all_but_last_block`). Frozen parts keep their
BatchNorm statistics: they stay in eval mode while the rest trains.
"""

from __future__ import annotations

from torch import nn

FREEZE = ("none", "backbone", "all_but_last_block")


def stages(backbone: nn.Module) -> list[nn.Module]:
    """The backbone's stages in order: what its own `stages()` returns when it has one (parts
    that are not plain children, such as a transformer's layers with the norm after them), else
    its top-level children, with Sequential/ModuleList containers opened one level (a CNN's conv
    blocks, a CRNN's blocks then its GRU), keeping only those that hold parameters."""
    if callable(getattr(backbone, "stages", None)):
        return list(backbone.stages())
    out: list[nn.Module] = []
    for child in backbone.children():
        items = list(child) if isinstance(child, (nn.Sequential, nn.ModuleList)) else [child]
        out += [m for m in items if any(True for _ in m.parameters())]
    return out


def frozen_modules(frontend: nn.Module, backbone: nn.Module, freeze: str) -> list[nn.Module]:
    """The modules `freeze` keeps fixed (ValueError naming `model.freeze` when unknown)."""
    if freeze not in FREEZE:
        raise ValueError(f"model.freeze must be one of {FREEZE}, got '{freeze}'")
    if freeze == "none":
        return []
    if freeze == "backbone":
        return [frontend, backbone]
    parts = stages(backbone)
    if len(parts) < 2:
        raise ValueError(f"model.freeze=all_but_last_block needs a backbone with several stages; "
                         f"{type(backbone).__name__} has {len(parts)}")
    return [frontend, *parts[:-1]]


def apply(modules: list[nn.Module]) -> None:
    """Stop gradients into `modules` and hold their BatchNorm statistics (eval mode)."""
    for module in modules:
        module.requires_grad_(False)
        module.eval()
