"""musicnn (Pons & Serra 2019), ported to PyTorch so its pretrained weights fine-tune here.

Musically motivated front end on a 96-band log-mel: "timbral" filters spanning 7 frames and
38 or 67 mel bands (40% / 70% of them), and "temporal" filters spanning one band and 32, 64
or 128 frames; each is max-pooled over frequency. A dense mid-end of three 7-frame 1-D
convolutions with residual connections follows, and the back end pools over time (max and
mean), then a 200-unit dense layer (the penultimate embedding) feeds the 50 tag logits.

Layer order, padding and batch-norm settings follow the original TensorFlow code exactly
(conv -> ReLU -> batch norm, TF's epsilon 1e-3), so the converted checkpoints of the
`musicnn` package (`genre_lab.models.pretrained`) reproduce its outputs; the parity test
(`tests/models/test_musicnn.py`) checks that against reference outputs of the original.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genre_lab.models.pretrained.musicnn_weights import MUSICNN_TAGS, musicnn_state_dict

#: Mel bands of the original front end (`features=musicnn`); pretrained weights need exactly these.
N_MELS = 96
#: The choices of `model.weights`.
WEIGHTS = ("none", *MUSICNN_TAGS)
#: Frames the original was trained on: 3 s at 16 kHz with hop 256.
PATCH_FRAMES = 187

_TF_EPS = 1e-3  # tf.compat.v1.layers.batch_normalization's default epsilon


def _bn(dim: int, n: int, momentum: float) -> nn.Module:
    cls = nn.BatchNorm2d if dim == 2 else nn.BatchNorm1d
    return cls(n, eps=_TF_EPS, momentum=momentum)


class _FrequencyMaxBlock(nn.Module):
    """Conv over (bins, frames) -> ReLU -> batch norm -> max over the remaining bins."""

    def __init__(self, filters: int, bins: int, frames: int, momentum: float) -> None:
        super().__init__()
        # Zero padding in time only, as TF's "same" (one frame more on the right for the even
        # temporal kernels) and the timbral branch's explicit 3+3 pad; bands stay "valid".
        self.pad = nn.ZeroPad2d(((frames - 1) // 2, frames // 2, 0, 0))
        self.conv = nn.Conv2d(1, filters, (bins, frames))
        self.bn = _bn(2, filters, momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(F.relu(self.conv(self.pad(x)))).amax(dim=2)  # (batch, filters, frames)


class _MidEndConv(nn.Module):
    """7-frame 1-D convolution over all channels -> ReLU -> batch norm."""

    def __init__(self, c_in: int, c_out: int, momentum: float) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, 7, padding=3)
        self.bn = _bn(1, c_out, momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(F.relu(self.conv(x)))


class MusiCNN(nn.Module):
    """(batch, 1, bins, frames) log-mel -> (batch, 200) penultimate embedding.

    `weights`: `msd` or `mtt` loads the converted checkpoint shipped in
    `genre_lab.models.pretrained` (trained on the Million Song Dataset or MagnaTagATune), `none`
    starts from random weights. `tag_logits(x)` gives the original 50 tag logits and
    `tag_names` their names (empty without pretrained weights). Frames may be any number:
    every layer is convolutional in time and the back end pools over all of it.
    """

    def __init__(
        self,
        n_bins: int = N_MELS,
        weights: str = "none",
        dropout: float = 0.5,
        timbral_filters: int = 204,
        temporal_filters: int = 51,
        midend_filters: int = 64,
        embed_dim: int = 200,
        n_tags: int = 50,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        if weights not in WEIGHTS:
            raise ValueError(f"model.backbone.weights must be one of {WEIGHTS}, got {weights!r}")
        if not 0.0 < bn_momentum <= 1.0:
            raise ValueError(f"model.backbone.bn_momentum must be in (0, 1], got {bn_momentum}")
        if n_bins < 67:
            raise ValueError(f"MusiCNN needs at least 67 mel bands (its widest timbral filter), got n_bins={n_bins}")
        # bn_momentum: PyTorch's 0.1, not the original's TF 0.99 (0.01 here). With 0.01 the
        # running statistics were still MSD's after a short fine-tune (synthetic data, 16
        # steps): validation accuracy 0.23 with them, 0.60 after re-estimating them on 30
        # training clips. Inference and parity use the loaded statistics either way.
        m = bn_momentum
        self.input_bn = _bn(2, 1, m)
        # Timbral filters: 40% and 70% of the bands (int(0.4*96)=38, int(0.7*96)=67 originally).
        self.timbral = nn.ModuleList(
            _FrequencyMaxBlock(timbral_filters, int(share * n_bins), 7, m) for share in (0.4, 0.7)
        )
        self.temporal = nn.ModuleList(_FrequencyMaxBlock(temporal_filters, 1, n, m) for n in (128, 64, 32))
        front = 2 * timbral_filters + 3 * temporal_filters
        self.midend = nn.ModuleList(
            [_MidEndConv(front, midend_filters, m), _MidEndConv(midend_filters, midend_filters, m),
             _MidEndConv(midend_filters, midend_filters, m)]
        )
        pooled = 2 * (front + 3 * midend_filters)
        self.pool_bn = _bn(1, pooled, m)
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(pooled, embed_dim)
        self.dense_bn = _bn(1, embed_dim, m)
        self.tag_head = nn.Linear(embed_dim, n_tags)
        # The original tag head serves `tag_logits` only; training puts a genre head on the
        # embedding instead, and DDP refuses trainable parameters that never get a gradient.
        self.tag_head.requires_grad_(False)
        self.out_dim = embed_dim
        self.pretrained = weights
        self.tag_names: tuple[str, ...] = ()
        if weights != "none":
            if n_bins != N_MELS:
                raise ValueError(
                    f"model.weights={weights} needs the original {N_MELS} mel bands (features=musicnn), "
                    f"got n_bins={n_bins}"
                )
            # strict: every tensor of the converted checkpoint, no more, no fewer, same shapes
            self.load_state_dict(musicnn_state_dict(weights))
            self.tag_names = MUSICNN_TAGS[weights]

    #: Intermediate layers that are embeddings once pooled over time (`pooled_layers`), in the
    #: network's order; `genre_lab.models.embedding_layers` offers them as `layer=` choices.
    POOLED_LAYERS = ("frontend", "midend")

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Intermediate outputs named as in musicnn's extractor, for inspection and parity.

        `frontend`: (batch, 561, frames) the timbral and temporal maps (the first 561 of the
        mid-end's channels); `mean_pool`/`max_pool`: (batch, 753) temporal pools of the
        front end and the three mid-end layers; `penultimate`: (batch, 200)."""
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"MusiCNN expects (batch, 1, bins, frames), got shape {tuple(x.shape)}")
        x = self.input_bn(x)
        front = torch.cat([block(x) for block in (*self.timbral, *self.temporal)], dim=1)
        h1 = self.midend[0](front)
        h2 = self.midend[1](h1) + h1
        h3 = self.midend[2](h2) + h2
        h = torch.cat([front, h1, h2, h3], dim=1)  # (batch, 753, frames)
        max_pool, mean_pool = h.amax(dim=2), h.mean(dim=2)
        # The original flattens a (channels, [max, mean]) array: the two pools interleave.
        pooled = torch.stack([max_pool, mean_pool], dim=2).flatten(1)
        penultimate = self.dense_bn(F.relu(self.dense(self.dropout(self.pool_bn(pooled)))))
        return {"frontend": front, "mean_pool": mean_pool, "max_pool": max_pool, "penultimate": penultimate}

    def pooled_layers(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The `POOLED_LAYERS` of (batch, 1, bins, frames) input, each its mean then its max over
        time, as the original extractor pools: `frontend` (batch, 2 x 561), the timbral and
        temporal feature maps; `midend` (batch, 2 x 753), `mean_pool` and `max_pool` (the front
        end and the mid-end together, as the original's back end sees them)."""
        found = self.features(x)
        front = found["frontend"]
        return {"frontend": torch.cat([front.mean(dim=2), front.amax(dim=2)], dim=1),
                "midend": torch.cat([found["mean_pool"], found["max_pool"]], dim=1)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.features(x)["penultimate"])

    def tag_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, 1, bins, frames) -> (batch, 50) logits of the original tags (sigmoid for
        probabilities, as musicnn's taggram)."""
        if not self.tag_names:
            raise ValueError("MusiCNN was built with weights=none: its tag head is untrained; use weights=msd or mtt")
        return self.tag_head(self(x))
