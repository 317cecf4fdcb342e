"""The one LightningModule: features -> backbone -> linear head, with loss, metrics and
optimiser from config. Validation and test report chunk-level metrics and track-level
metrics (mean of chunk probabilities over the whole clip; `pooling` picks another,
`genre_lab.audio.windows.POOLINGS`).

With `model.freeze=backbone` training runs the frozen front end and backbone once per window
and reuses their embeddings (`genre_lab.training.frozen_cache`: no augmentation on the frozen
part, mixup on the embeddings).

`task="multiclass"`: one genre per clip, softmax and cross-entropy. `task="multilabel"`: any
set of tags per clip (multi-hot targets), independent sigmoids and binary cross-entropy.

The network itself is `self.net`, the `genre_lab.models.network.GenreNet` inference runs: its forward
pass, probabilities and spec are the module's. Its weights are therefore `net.*` in a Lightning
checkpoint; checkpoints written before the module held it carry the bare `frontend.*`,
`backbone.*`, `head.*` keys and get the prefix on loading (`on_load_checkpoint`), and model
files keep the network's own layout (`genre_lab.models.model_file`, `network_keys`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
    MultilabelAccuracy,
)

from genre_lab.models.model_file import CONFIG_KEY, ModelSpec, lightning_keys
from genre_lab.features import FrontEnd, SpecAugment, learned, mixup
from genre_lab.training.freeze import apply as apply_freeze
from genre_lab.training.freeze import frozen_modules as freeze_modules
from genre_lab.training import frozen_cache
from genre_lab.training.metrics import LOCAL, classification_metrics, multilabel_metrics
from genre_lab.models.network import GenreNet
from genre_lab.audio.windows import own_pooling, shifted_starts, track_probabilities

#: Evaluation metrics are fed the outputs of every rank, gathered (see `_eval_epoch_end`):
#: torchmetrics' own cross-rank sync would count each of them once per rank again.
_LOCAL = LOCAL


def _metrics(n: int, prefix: str, multilabel: bool = False) -> MetricCollection:
    return multilabel_metrics(n, prefix) if multilabel else classification_metrics(n, prefix)


def unshard(gathered: torch.Tensor, total: int) -> torch.Tensor:
    """(world, per_rank, ...) outputs of an unshuffled `DistributedSampler` -> (total, ...) in
    dataset order. Rank r's j-th item is dataset item j * world + r; positions past `total`
    are the sampler's padding (repeats of the first items, which would count twice)."""
    world, per_rank = gathered.shape[:2]
    if world * per_rank < total:
        raise ValueError(f"{world} ranks x {per_rank} items cannot hold {total} evaluation items: "
                         "evaluation needs Lightning's distributed sampler (trainer.use_distributed_sampler)")
    return gathered.transpose(0, 1).reshape(world * per_rank, *gathered.shape[2:])[:total]


class GenreClassifier(pl.LightningModule):
    def __init__(
        self,
        frontend: FrontEnd,
        backbone: nn.Module,
        classes: list[str],
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        augment: SpecAugment | None = None,
        mixup_alpha: float = 0.0,
        label_smoothing: float = 0.0,
        config: dict | None = None,
        freeze: str = "none",
        backbone_lr_scale: float = 1.0,
        task: str = "multiclass",
        head_warmup_epochs: int = 0,
        frozen_cache_mb: float = frozen_cache.DEFAULT_LIMIT_MB,
    ) -> None:
        super().__init__()
        #: The network inference runs (front end, backbone, head, and what they were trained on).
        self.net = GenreNet(frontend, backbone, classes, config, task)
        self.augment = augment or nn.Identity()
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.mixup_alpha, self.label_smoothing = mixup_alpha, label_smoothing
        if not backbone_lr_scale > 0:
            raise ValueError(f"model.optimizer.backbone_lr_scale must be positive, got {backbone_lr_scale}")
        self.backbone_lr_scale = float(backbone_lr_scale)
        #: Parts kept fixed by `model.freeze` (not submodules of their own: names only).
        self._frozen = freeze_modules(frontend, backbone, freeze)
        apply_freeze(self._frozen)
        if isinstance(head_warmup_epochs, bool) or not isinstance(head_warmup_epochs, int) or head_warmup_epochs < 0:
            raise ValueError(f"model.head_warmup_epochs must be a whole number >= 0, got {head_warmup_epochs!r}")
        #: Epochs at the start in which only the head trains (`model.head_warmup_epochs`).
        self.head_warmup_epochs = head_warmup_epochs
        #: The parts held by the warm-up in the current epoch (`on_train_epoch_start`).
        self._warming: list[nn.Module] = []
        self._warm_params: list[nn.Parameter] = []
        self._freeze, self.frozen_cache_mb = freeze, float(frozen_cache_mb)
        #: The frozen part's embeddings by window, during a fit with `freeze=backbone` (`setup`).
        self.frozen_cache: frozen_cache.EmbeddingCache | None = None
        #: How evaluation pools a track's window probabilities (`genre_lab.audio.windows`): the
        #: model's own (`own_pooling`: mean; a linear probe's network, its mean logits).
        self.pooling = own_pooling(self.net)
        n = len(classes)
        self.train_acc = MultilabelAccuracy(n, average="macro") if self.multilabel else MulticlassAccuracy(n, average="micro")
        self.chunk_metrics = nn.ModuleDict({s: _metrics(n, f"{s}/chunk_", self.multilabel) for s in ("val", "test")})
        self.track_metrics = nn.ModuleDict({s: _metrics(n, f"{s}/track_", self.multilabel) for s in ("val", "test")})
        self._outputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        #: After `trainer.test`: track-level confusion matrix and per-class report.
        self.test_confusion: torch.Tensor | None = None
        self.test_report: dict[str, dict[str, float]] = {}
        #: A learned front end's filterbank when fitting started (see `on_fit_end`).
        self._filterbank_start: torch.Tensor | None = None

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: DictConfig | dict, classes: list[str]) -> GenreClassifier:
        """Build from a composed training config with `features`, `model` and `data` groups."""
        return cls.from_spec(ModelSpec.from_config(cfg, classes))

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> GenreClassifier:
        """Build from a validated spec: every part comes from `genre_lab.registry`'s tables."""
        frontend = spec.build_frontend()
        aug = spec.features.get("augment") or {}
        return cls(
            frontend=frontend,
            backbone=spec.build_backbone(frontend.n_bins),
            classes=list(spec.classes),
            optimizer=spec.optimizer_factory(),
            scheduler=spec.scheduler_factory(),
            augment=SpecAugment(aug.get("freq_mask", 0), aug.get("time_mask", 0), aug.get("n_masks", 1)),
            mixup_alpha=float(aug.get("mixup_alpha", 0.0)),
            label_smoothing=float(spec.model.get("label_smoothing", 0.0)),
            config=spec.to_dict(),
            freeze=str(spec.model.get("freeze", "none")),
            backbone_lr_scale=float((spec.model.get("optimizer") or {}).get("backbone_lr_scale", 1.0)),
            task=spec.task,
            head_warmup_epochs=spec.model.get("head_warmup_epochs") or 0,
            frozen_cache_mb=frozen_cache.limit_mb(spec.model.get("frozen_cache_mb", frozen_cache.DEFAULT_LIMIT_MB)),
        )

    @classmethod
    def from_network(cls, net: GenreNet) -> GenreClassifier:
        """The LightningModule (for `Trainer.test`) with the weights of an inference network."""
        model = cls.from_spec(net.spec)
        model.net.load_state_dict(net.state_dict())
        return model

    # -- the network ------------------------------------------------------------------------
    # Its parts and description, read through the module as callers (tagging, transfer,
    # freezing, explanations) and the training code below use them.
    @property
    def frontend(self) -> nn.Module:
        return self.net.frontend

    @property
    def backbone(self) -> nn.Module:
        return self.net.backbone

    @property
    def head(self) -> nn.Linear:
        return self.net.head

    @property
    def classes(self) -> list[str]:
        return self.net.classes

    @property
    def task(self) -> str:
        return self.net.task

    @property
    def multilabel(self) -> bool:
        return self.net.multilabel

    @property
    def config(self) -> dict[str, Any]:
        return self.net.config

    @property
    def spec(self) -> ModelSpec:
        """The runtime contract the network was built from (see `genre_lab.models.model_file`)."""
        return self.net.spec

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(batch, samples) audio -> (batch, classes) logits."""
        return self.net(wave)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return self.net.probabilities(logits)

    # -- checkpoints ------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CONFIG_KEY] = self.config

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """A checkpoint written before the module held its network (bare `frontend.*`,
        `backbone.*`, `head.*` keys) gets the `net.` prefix before Lightning loads it
        (resume, `Trainer.test(ckpt_path=...)`)."""
        checkpoint["state_dict"] = lightning_keys(checkpoint["state_dict"])

    # -- training ---------------------------------------------------------------------------
    def _loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.multilabel:
            return F.binary_cross_entropy_with_logits(logits, target.float())
        return F.cross_entropy(logits, target)

    # -- a frozen backbone's embeddings (genre_lab.training.frozen_cache) --------------------
    def embedding_path(self) -> bool:
        """Whether only the head trains (`freeze=backbone`, nothing of the front end or backbone
        unfrozen since): training then works on the frozen part's embeddings."""
        return self._freeze == "backbone" and not any(
            p.requires_grad for m in (self.frontend, self.backbone) for p in m.parameters())

    def _frozen_embedding(self, wave: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.backbone(self.frontend(wave))

    def embed_frozen(self, split: str, batch: Any) -> torch.Tensor:
        """The frozen part's embeddings of a batch's windows: from the cache when the batch
        carries (clip, start) keys and a cache is on, else computed."""
        wave = batch[0]
        if self.frozen_cache is None or len(batch) < 4:
            return self._frozen_embedding(wave)
        clips, starts = batch[-2], batch[-1]
        return self.frozen_cache.embed(self._frozen_embedding, wave, frozen_cache.keys(split, clips, starts))

    def setup(self, stage: str) -> None:
        """Before fitting with `freeze=backbone`: a cache for the frozen part's embeddings, and
        fixed training windows from the DataModule, when they fit `model.frozen_cache_mb`."""
        self.frozen_cache = None
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if stage != "fit" or not self.embedding_path() or not hasattr(datamodule, "fixed_train_windows"):
            return
        datamodule.setup(stage)
        train, val = datamodule.splits["train"], datamodule.splits["val"]
        n = len(train) * datamodule.train_chunks_per_clip + sum(
            len(shifted_starts(len(w), datamodule.chunk, datamodule.hop)) for w in val.waves)
        if frozen_cache.fits(n, int(self.backbone.out_dim), self.frozen_cache_mb):
            datamodule.fixed_train_windows = True
            self.frozen_cache = frozen_cache.EmbeddingCache(self.frozen_cache_mb * 2**20)

    def on_train_epoch_end(self) -> None:
        cache = self.frozen_cache
        if cache is not None and cache.hits + cache.misses:
            self.log("train/frozen_cache_hit_rate", cache.hits / (cache.hits + cache.misses))

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        wave, y = batch[0], batch[1]
        embedded = self.embedding_path()
        if not embedded and self.frozen_cache is not None:  # unfrozen since: its embeddings are stale
            self.frozen_cache = None
        # Frozen backbone: its embeddings (no augmentation on the frozen part); else the spectrogram.
        x = self.embed_frozen("train", batch) if embedded else self.augment(self.frontend(wave))
        target = y.float() if self.multilabel else F.one_hot(y, len(self.classes)).float()
        if self.mixup_alpha > 0:
            x, target = mixup(x, target, self.mixup_alpha)
        logits = self.head(x if embedded else self.backbone(x))
        if self.multilabel:
            loss = F.binary_cross_entropy_with_logits(logits, target)
            self.train_acc(logits.sigmoid(), (target > 0.5).long())
        else:
            loss = F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)
            self.train_acc(logits, target.argmax(1))
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    def _eval_step(self, stage: str, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> None:
        wave, y, clip = batch[:3]
        if stage == "val" and self.frozen_cache is not None and self.embedding_path():
            logits = self.head(self.embed_frozen("val", batch))
        else:
            logits = self(wave)
        self.log(f"{stage}/loss", self._loss(logits, y), on_epoch=True, prog_bar=stage == "val", sync_dist=True)
        # float32 whatever the trainer precision: track sums accumulate into float32.
        self._outputs.append((self.probabilities(logits).detach(), y, clip))

    def _eval_epoch_end(self, stage: str) -> None:
        probs, labels, clips = (torch.cat(t) for t in zip(*self._outputs))
        self._outputs.clear()
        if self.trainer.world_size > 1:
            # A clip's chunks are spread over the ranks: the per-track mean needs all of them.
            total = len(self._eval_dataset(stage))
            probs, labels, clips = (unshard(self.all_gather(t), total) for t in (probs, labels, clips))
        track_probs, track_labels = track_probabilities(probs, labels, clips, self.pooling, not self.multilabel)
        if self.multilabel:  # torchmetrics' multilabel metrics take integer multi-hot targets
            labels, track_labels = labels.long(), track_labels.long()
        self.log_dict(self.chunk_metrics[stage](probs, labels))
        # The progress bar shows the losses and the validation track accuracy, not every metric.
        for key, value in self.track_metrics[stage](track_probs, track_labels).items():
            self.log(key, value, prog_bar=key == "val/track_acc")
        self.chunk_metrics[stage].reset()
        self.track_metrics[stage].reset()
        if stage == "test" and not self.multilabel:  # a confusion matrix needs one class per track
            self._report(track_probs, track_labels)

    def _eval_dataset(self, stage: str) -> Any:
        loaders = self.trainer.val_dataloaders if stage == "val" else self.trainer.test_dataloaders
        loader = loaders[0] if isinstance(loaders, (list, tuple)) else loaders
        return loader.dataset

    def _report(self, probs: torch.Tensor, labels: torch.Tensor) -> None:
        n = len(self.classes)
        self.test_confusion = MulticlassConfusionMatrix(n, **_LOCAL).to(probs.device)(probs, labels).cpu()
        per_class = {
            name: metric(n, average=None, **_LOCAL).to(probs.device)(probs, labels).cpu()
            for name, metric in (("precision", MulticlassPrecision), ("recall", MulticlassRecall), ("f1", MulticlassF1Score))
        }
        support = torch.bincount(labels.cpu(), minlength=n)
        self.test_report = {
            c: {**{k: float(v[i]) for k, v in per_class.items()}, "support": int(support[i])}
            for i, c in enumerate(self.classes)
        }

    def _kernel_parameters(self) -> list[nn.Parameter]:
        """The learned front end's STFT/mel kernels (`features.frontend.trainable`), if any."""
        kernels = getattr(self.frontend, "kernel_parameters", None)
        return [p for p in kernels() if p.requires_grad] if kernels else []

    def on_fit_start(self) -> None:
        if self._kernel_parameters():
            self._filterbank_start = self.frontend.filterbank().cpu().clone()

    def on_fit_end(self) -> None:
        """A learned front end: its filterbank before and after training, to the run."""
        before, self._filterbank_start = self._filterbank_start, None
        logger = self.logger
        if before is None or not self.trainer.is_global_zero or not hasattr(logger, "run_id"):
            return
        after = self.frontend.filterbank().cpu()
        client, run_id = logger.experiment, logger.run_id
        client.log_metric(run_id, learned.CHANGE_METRIC, learned.relative_change(before, after))
        fig = learned.filterbank_figure(before, after, self.frontend.sample_rate)
        client.log_figure(run_id, fig, learned.FIGURE)
        import matplotlib.pyplot as plt

        plt.close(fig)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step("val", batch)

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step("test", batch)

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    def train(self, mode: bool = True) -> GenreClassifier:
        super().train(mode)
        for module in [*self._frozen, *self._warming]:  # frozen parts keep their BatchNorm statistics
            module.eval()
        return self

    def on_train_epoch_start(self) -> None:
        """Head warm-up (`model.head_warmup_epochs=N`): in the first N epochs the front end and
        backbone are held (no gradients, BatchNorm statistics fixed) and only the head trains;
        from epoch N on, everything `model.freeze` leaves free trains. For a pretrained backbone
        with a new head (`init_from` without a probe): a random head's first gradients would
        otherwise flow into, and disturb, the features it is meant to learn to read. The
        parameters stay in the optimizer throughout (without a gradient it skips them), so the
        schedule and the learning-rate groups are those of the whole run. Also starts the frozen
        cache's hit count afresh: `train/frozen_cache_hit_rate` is each epoch's own."""
        if self.frozen_cache is not None:
            self.frozen_cache.hits = self.frozen_cache.misses = 0
        warming = self.current_epoch < self.head_warmup_epochs
        if warming and not self._warming:
            self._warming = [m for m in (self.frontend, self.backbone) if m not in self._frozen]
            self._warm_params = [p for m in self._warming for p in m.parameters() if p.requires_grad]
            for p in self._warm_params:
                p.requires_grad_(False)
            for module in self._warming:
                module.eval()
        elif not warming and self._warming:
            for p in self._warm_params:
                p.requires_grad_(True)
            self._warming, self._warm_params = [], []
            self.train(self.training)

    def configure_optimizers(self) -> Any:
        head = [p for p in self.head.parameters() if p.requires_grad]
        kernels = self._kernel_parameters()
        in_kernels = {id(p) for p in kernels}
        pretrained = [p for m in (self.frontend, self.backbone) for p in m.parameters()
                      if p.requires_grad and id(p) not in in_kernels]
        kernel_scale = float(getattr(self.frontend, "lr_scale", 1.0))
        lr = self.optimizer_factory.keywords.get("lr", 1e-3)
        if self.backbone_lr_scale == 1.0 and (not kernels or kernel_scale == 1.0):
            groups: Any = head + pretrained + kernels
        else:
            # The pretrained part learns `backbone_lr_scale` times slower than the new head, a
            # learned front end's kernels at `features.frontend.lr_scale` times the head's rate.
            groups = [{"params": head}, {"params": pretrained, "lr": lr * self.backbone_lr_scale}]
            if kernels:
                groups.append({"params": kernels, "lr": lr * kernel_scale})
        opt = self.optimizer_factory(groups)
        if self.scheduler_factory is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": self.scheduler_factory(opt), "interval": "epoch"}}
