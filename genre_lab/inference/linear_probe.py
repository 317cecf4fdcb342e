"""A track-level linear probe: how much genre a model's embedding holds, the work behind
`genre-lab probe MODEL data=...`.

Every track of the dataset is cut into the model's windows (the evaluation windows: the same
ones tagging and `evaluate` use), each window is embedded (`probe.layer`, one of the network's
layers: `genre_lab.models.embedding_layers`; `auto`, the default, is the measured-best layer of
a pretrained model and the penultimate of any other), the window embeddings of a track are
pooled (`probe.pooling`: mean, std and max, concatenated in the order given), standardised
(fitted on the training split only), and a scikit-learn `LogisticRegression` is fitted on the
training split for each C of `probe.C_grid`;
the C with the best validation accuracy (ties: the lower validation log loss) is kept and its
test metrics are logged under the names training uses (`test/track_acc`,
`test/track_balanced_acc`, `test/track_f1`, `test/track_auroc`, `test/track_ece`, ...).

Embeddings are cached on disk (`probe.cache_dir`), one `.npy` entry of (windows, dim) float32
per track, keyed by the model's identity (a digest of its spec and weights), the layer, the
windows (rate, length, hop) and the track's audio (a digest of its decoded samples): a later
probe of the same model (another pooling, another C grid, another fold of the same files)
embeds nothing again. Entries are untrusted: loaded with `allow_pickle=False`, checked
against a record of their shape and CRC-32 written after them; an entry that fails any check
is ignored with one warning line and the track embedded again.

With `data.folds=K` every fold is probed in turn (the cache makes each file's embedding once);
the run logs each fold's metrics under `fold<k>/`, their mean and std across folds
(`test/track_acc_mean`, `test/track_acc_std`, ...), and the metrics of the folds' test
predictions pooled (`test/track_acc`, ...: every track is tested once).

A probe of `layer=penultimate` with `pooling=[mean]` on one split is also logged as the run's
model (`models/probe_file.probe_network`: the standardiser folded into a linear head applied
to each window, under the embedding network), so `genre-lab predict <probe run>`, `mlflow models
serve`, ensembles and `train init_from=<probe run>` (LP-FT) take it; other probes log none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mlflow.entities import Metric
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from genre_lab import registry
from genre_lab.audio.decode import AudioDecodeError
from genre_lab.audio.windows import chunk_starts, windows
from genre_lab.data import SPLITS, AudioSplit, GenreDataModule
from genre_lab.data.cache import checksum, replace_atomically
from genre_lab.inference.evaluation import data_config
from genre_lab.inference.tagger import inference_device
from genre_lab.models.loading import load_model
from genre_lab.models.network import GenreNet, for_inference
from genre_lab.models.mlflow_model import log_tagger_model
from genre_lab.models.embedding_layers import choose_layer, layer_output
from genre_lab.models.probe_file import POOLINGS, ProbeHead, probe_network, write_probe
from genre_lab.tracking import mlflow_runs as tracking
from genre_lab.training.metrics import classification_metrics

log = logging.getLogger(__name__)

#: Bumped when an entry's format or what is embedded changes, so old entries are never reused.
CACHE_VERSION = 1


class ProbeError(ValueError):
    """A probe that cannot be made as asked; the message names the setting or model."""


def model_digest(network: nn.Module, spec: dict[str, Any]) -> str:
    """SHA-256 of a model's spec and every tensor of its state dict (names, shapes, bytes): the
    model's identity in the embedding cache, whatever file or run it was loaded from."""
    h = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode())
    for name, tensor in sorted(network.state_dict().items()):
        t = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(f"\0{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def audio_digest(wave: np.ndarray, sample_rate: int) -> str:
    """SHA-256 of a track's decoded samples at `sample_rate`: the same audio has the same key
    whichever file, dataset or fold it comes from."""
    h = hashlib.sha256(f"{sample_rate}\0".encode())
    h.update(memoryview(np.ascontiguousarray(wave, dtype=np.float32)).cast("B"))
    return h.hexdigest()


class WindowEmbedder:
    """One model's window embeddings at one of its layers (`layers_of`; not `auto`: resolve
    it with `choose_layer` first), prepared for inference on `device` (`auto`: CUDA when there
    is one)."""

    def __init__(self, network: GenreNet, layer: str, chunk: int, hop: int, batch_size: int = 16,
                 device: str | torch.device | None = "cpu") -> None:
        if choose_layer(network, layer, "", "probe.layer") != layer:  # `auto`: the caller resolves it
            raise ProbeError("probe.layer=auto must be resolved (choose_layer) before embedding")
        self.device = inference_device(None if device in (None, "auto") else device)
        self.network = for_inference(network, self.device)
        self.layer, self.chunk, self.hop, self.batch_size = layer, chunk, hop, max(1, int(batch_size))
        self.dim = int(self._embed(torch.zeros(1, chunk)).shape[1])

    @torch.inference_mode()
    def _embed(self, batch: torch.Tensor) -> torch.Tensor:
        return layer_output(self.network, batch.to(self.device), self.layer).cpu()

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        """(windows, dim) float32 embeddings of every window of a track."""
        batch, _ = windows(wave, self.chunk, self.hop)
        out = torch.cat([self._embed(part) for part in batch.split(self.batch_size)]).numpy()
        if not np.isfinite(out).all():
            raise ProbeError("the model gave non-finite embeddings")
        return np.ascontiguousarray(out, dtype=np.float32)


class EmbeddingCache:
    """Window embeddings on disk under `root/<key[:2]>/<key>.npy`, each with a `<key>.json`
    record (windows, dim, CRC-32) written after it; see the module docstring."""

    def __init__(self, root: str | Path | None) -> None:
        self.root = None if root is None else Path(root).expanduser().resolve()

    @staticmethod
    def key(model: str, layer: str, sample_rate: int, chunk: int, hop: int, audio: str) -> str:
        ident = f"v{CACHE_VERSION}\0{model}\0{layer}\0{sample_rate}\0{chunk}\0{hop}\0{audio}"
        return hashlib.sha256(ident.encode()).hexdigest()

    def _paths(self, key: str) -> tuple[Path, Path]:
        assert self.root is not None
        folder = self.root / key[:2]
        return folder / f"{key}.npy", folder / f"{key}.json"

    def read(self, key: str, n_windows: int, dim: int) -> np.ndarray | None:
        """The entry of `key` if it is exactly (n_windows, dim) finite float32 matching its
        record; None when absent, and None with one warning when it fails a check."""
        if self.root is None:
            return None
        entry, record = self._paths(key)
        if not entry.is_file():
            return None
        # A .npy header is at most a few hundred bytes: anything larger is not this entry (and
        # is never read into memory).
        size, need = entry.stat().st_size, n_windows * dim * 4
        if not need < size <= need + 4096:
            log.warning("ignoring embedding cache entry %s: %d bytes, expected %d data bytes and a header; "
                        "embedding again", entry, size, need)
            return None
        try:
            with record.open("rb") as f:  # a record is a few dozen bytes: read no more than 4 KiB
                expected = json.loads(f.read(4096))
            shape, crc = (int(expected["windows"]), int(expected["dim"])), int(expected["crc32"])
            value = np.load(entry, allow_pickle=False)
            if not isinstance(value, np.ndarray):  # an .npz archive of the right size
                raise ValueError("not a plain .npy array")
        except (OSError, ValueError, TypeError, KeyError, EOFError, RecursionError) as err:
            log.warning("ignoring embedding cache entry %s (%s); embedding again", entry, " ".join(str(err).split()))
            return None
        if value.dtype != np.float32 or value.shape != (n_windows, dim) or shape != (n_windows, dim):
            log.warning("ignoring embedding cache entry %s: %s %s, expected (%d, %d) float32; embedding again",
                        entry, value.shape, value.dtype, n_windows, dim)
            return None
        if checksum(value) != crc or not np.isfinite(value).all():
            log.warning("ignoring embedding cache entry %s: its values do not match their checksum; embedding again", entry)
            return None
        return value

    def write(self, key: str, value: np.ndarray) -> None:
        if self.root is None:
            return
        entry, record = self._paths(key)
        try:
            replace_atomically(entry, lambda f: np.save(f, value, allow_pickle=False))
            text = json.dumps({"windows": value.shape[0], "dim": value.shape[1], "crc32": checksum(value)})
            replace_atomically(record, lambda f: f.write(text.encode()))  # the record last: no record, no entry
        except OSError as err:
            log.warning("could not write embedding cache entry %s: %s", entry, err)


@dataclass
class EmbeddedSplits:
    """Per split: each track's window embeddings and label; how many came from the cache."""

    windows: dict[str, list[np.ndarray]] = field(default_factory=dict)
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    cached: int = 0
    computed: int = 0


def embed_splits(datamodule: GenreDataModule, embedder: WindowEmbedder, cache: EmbeddingCache,
                 digest: str) -> EmbeddedSplits:
    """Window embeddings of every track of the three splits (labels: the dataset's class
    indices), through the cache; a progress bar on a terminal."""
    out = EmbeddedSplits()
    assert datamodule.splits is not None
    rate = datamodule.sample_rate
    console = Console(stderr=True)
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=console, transient=True, disable=not console.is_terminal)
    with bar:
        task = bar.add_task("embedding tracks", total=sum(len(s) for s in datamodule.splits.values()))
        for name in SPLITS:
            out.windows[name], out.labels[name] = _embed_split(datamodule.splits[name], embedder, cache, digest,
                                                               rate, out, lambda: bar.advance(task))
    return out


def _embed_split(split: AudioSplit, embedder: WindowEmbedder, cache: EmbeddingCache, digest: str, rate: int,
                 counts: EmbeddedSplits, advance: Callable[[], None]) -> tuple[list[np.ndarray], np.ndarray]:
    rows = []
    for clip, lazy in zip(split.ids, split.waves):
        try:  # a decode-cache entry is read here; deleted or changed since the scan, it is refused
            wave = np.asarray(lazy)
        except AudioDecodeError as err:
            raise ProbeError(f"clip {clip!r} could not be read again: {err}; run the probe again "
                             "(the decode cache rebuilds the entry)") from None
        key = cache.key(digest, embedder.layer, rate, embedder.chunk, embedder.hop, audio_digest(wave, rate))
        n_windows = len(chunk_starts(len(wave), embedder.chunk, embedder.hop))
        found = cache.read(key, n_windows, embedder.dim)
        if found is None:
            found = embedder(wave)
            cache.write(key, found)
            counts.computed += 1
        else:
            counts.cached += 1
        rows.append(found)
        advance()
    return rows, np.asarray(split.labels, dtype=np.int64)


def pool(track_windows: Sequence[np.ndarray], pooling: Sequence[str]) -> np.ndarray:
    """(tracks, len(pooling) * dim): each track's window embeddings pooled, in `pooling`'s order."""
    ops = {"mean": lambda w: w.mean(0), "std": lambda w: w.std(0), "max": lambda w: w.max(0)}
    return np.stack([np.concatenate([ops[p](w) for p in pooling]) for w in track_windows]).astype(np.float64)


def check_pooling(value: Any) -> tuple[str, ...]:
    """`probe.pooling` as a tuple: a list (`[mean,std,max]`) or a comma-separated string."""
    names = [p.strip() for p in value.split(",")] if isinstance(value, str) else [str(p) for p in value]
    if not names or any(p not in POOLINGS for p in names) or len(set(names)) != len(names):
        raise ProbeError(f"probe.pooling must be distinct names among {', '.join(POOLINGS)}, got {value!r}")
    return tuple(names)


@dataclass
class FoldFit:
    """One fitted probe: its head, the chosen C, validation accuracy per C, test probabilities."""

    head: ProbeHead
    C: float
    val_acc: dict[float, float]
    probs: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]


def fit_probe(data: EmbeddedSplits, pooling: Sequence[str], grid: Sequence[float], classes: list[str],
              layer: str, source_model: str, digest: str, max_iter: int = 2000) -> FoldFit:
    """Standardise on train, fit a LogisticRegression per C on train, keep the best on val.

    BLAS runs on one thread here: these matrices are small (tracks x a few thousand features),
    too small to share out, and OpenBLAS's threads waiting for busy cores made every fit many
    times slower (docs/benchmarks.md, "Probe layers")."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _fit_probe(data, pooling, grid, classes, layer, source_model, digest, max_iter)


def _fit_probe(data: EmbeddedSplits, pooling: Sequence[str], grid: Sequence[float], classes: list[str],
               layer: str, source_model: str, digest: str, max_iter: int) -> FoldFit:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, log_loss
    from sklearn.preprocessing import StandardScaler

    if not grid or any(not float(c) > 0 for c in grid):
        raise ProbeError(f"probe.C_grid must be a non-empty list of positive numbers, got {list(grid)}")
    x = {name: pool(data.windows[name], pooling) for name in SPLITS}
    scaler = StandardScaler().fit(x["train"])
    z = {name: scaler.transform(v) for name, v in x.items()}
    n = len(classes)
    best: tuple[float, float, float, Any] | None = None
    val_acc: dict[float, float] = {}
    for c in map(float, grid):
        clf = LogisticRegression(C=c, max_iter=int(max_iter)).fit(z["train"], data.labels["train"])
        p_val = clf.predict_proba(z["val"])
        acc = float(accuracy_score(data.labels["val"], clf.classes_[p_val.argmax(1)]))
        loss = float(log_loss(data.labels["val"], p_val, labels=clf.classes_))
        val_acc[c] = acc
        if best is None or (acc, -loss) > (best[0], -best[1]):
            best = (acc, loss, c, clf)
    assert best is not None
    _, _, chosen, clf = best
    # Columns in the classes' order (every class has training clips: the DataModule checks it).
    coef = np.zeros((n, z["train"].shape[1]))
    intercept = np.full(n, -1e4)
    coef[clf.classes_], intercept[clf.classes_] = clf.coef_, clf.intercept_
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    head = ProbeHead(tuple(classes), layer, tuple(pooling), scaler.mean_.astype(np.float32),
                     scale.astype(np.float32), coef.astype(np.float32), intercept.astype(np.float32),
                     source_model, digest, chosen)
    probs = {}
    for name in SPLITS:
        p = np.zeros((len(z[name]), n))
        p[:, clf.classes_] = clf.predict_proba(z[name])
        probs[name] = p
    return FoldFit(head, chosen, val_acc, probs, data.labels)


def track_metrics(probs: np.ndarray, labels: np.ndarray, n: int, split: str) -> dict[str, float]:
    """The training metrics (`genre_lab.training.metrics`) of track probabilities, named
    `<split>/track_<metric>` as training and `evaluate` name them."""
    collection = classification_metrics(n, f"{split}/track_")
    values = collection(torch.as_tensor(probs, dtype=torch.float32), torch.as_tensor(labels, dtype=torch.long))
    return {k: float(v) for k, v in values.items()}


@dataclass
class ProbeResult:
    run_id: str
    metrics: dict[str, float]
    classes: list[str]
    folds: list[FoldFit]
    cached: int
    computed: int
    tags: dict[str, str] = field(default_factory=dict)
    #: `models:/<id>` of the probe as a network (`probe_network`), None when it is not one.
    model_uri: str | None = None


def _fold_configs(cfg: DictConfig) -> list[tuple[int | None, DictConfig]]:
    """(fold, config) per fold to probe: every fold of `data.folds=K`, else the one split."""
    folds = cfg.data.get("folds") if cfg.get("data") is not None else None
    if not folds:
        return [(None, cfg)]
    out = []
    for k in range(int(folds)):
        one = cfg.copy()
        with open_dict(one):
            one.data.fold = k
        out.append((k, one))
    return out


def run_probe(cfg: DictConfig) -> ProbeResult:
    """Probe `cfg.embedding_model` on `cfg.data` (every fold of `data.folds`), log one MLflow run."""
    settings = cfg.probe
    pooling = check_pooling(settings.pooling)
    grid = [float(c) for c in settings.C_grid]
    uri = cfg.get("tracking_uri") or tracking.tracking_uri()
    loaded = load_model(str(cfg.embedding_model), uri, one_model_for="probe")
    network, source = loaded.network, loaded.source
    assert isinstance(network, GenreNet)
    layer = choose_layer(network, settings.layer, source.spec, "probe.layer")
    client = tracking.open_client(uri)
    digest = model_digest(network, network.config)
    cache = EmbeddingCache(settings.get("cache_dir"))

    fits: list[FoldFit] = []
    cached = computed = 0
    classes: list[str] = []
    data_cfg: dict = {}
    dataset = "?"
    embedder: WindowEmbedder | None = None
    for fold, one in _fold_configs(cfg):
        data_cfg = data_config(one, source, network, client)
        if data_cfg.get("task", "multiclass") == "multilabel":
            raise ProbeError("the probe fits single-label genres; task=multilabel is not supported")
        datamodule: GenreDataModule = registry.build(data_cfg, registry.DATA, "data")
        datamodule.setup()
        dataset = datamodule.source.name
        # The dataset's classes, in its order: the probe learns them, whatever the model's head was.
        classes = list(datamodule.classes)
        if embedder is None or (embedder.chunk, embedder.hop) != (datamodule.chunk, datamodule.hop):
            embedder = WindowEmbedder(network, layer, datamodule.chunk, datamodule.hop,
                                      int(settings.get("batch_size", 16)), settings.get("device", "auto"))
        data = embed_splits(datamodule, embedder, cache, digest)
        cached, computed = cached + data.cached, computed + data.computed
        fits.append(fit_probe(data, pooling, grid, classes, embedder.layer, source.spec, digest,
                              int(settings.get("max_iter", 2000))))
        log.info("probe%s: C=%g, %d track(s) from the cache, %d embedded", "" if fold is None else f" fold {fold}",
                 fits[-1].C, data.cached, data.computed)

    n = len(classes)
    metrics: dict[str, float] = {}
    if len(fits) == 1:
        for split in ("val", "test"):
            metrics.update(track_metrics(fits[0].probs[split], fits[0].labels[split], n, split))
    else:
        per_fold = []
        for k, fit in enumerate(fits):
            values = {**track_metrics(fit.probs["val"], fit.labels["val"], n, "val"),
                      **track_metrics(fit.probs["test"], fit.labels["test"], n, "test")}
            metrics.update({f"fold{k}/{name}": v for name, v in values.items()})
            per_fold.append(values)
        for name in per_fold[0]:
            column = np.array([values[name] for values in per_fold])
            metrics[f"{name}_mean"], metrics[f"{name}_std"] = float(column.mean()), float(column.std(ddof=1))
        pooled_p = np.concatenate([fit.probs["test"] for fit in fits])
        pooled_y = np.concatenate([fit.labels["test"] for fit in fits])
        metrics.update(track_metrics(pooled_p, pooled_y, n, "test"))
    metrics["embed/cached_tracks"], metrics["embed/computed_tracks"] = float(cached), float(computed)

    if source.run_id is not None:
        experiment = client.get_run(source.run_id).info.experiment_id
    else:
        experiment = tracking.experiment_id(str(cfg.experiment_name), uri)
    tags = {
        "run_type": "probe",
        "probed_model": source.spec,
        "model": str(network.config.get("model", {}).get("name", "?")),
        "dataset": dataset,
        "probe_layer": layer,
        **tracking.source_tags(),
    }
    if source.run_id is not None:
        tags["probed_run_id"] = source.run_id
    run_name = cfg.get("run_name") or f"probe-{tags['model']}-{tags['probe_layer']}-{dataset}"
    with tracking.tracked_run(client, experiment, run_name, tags) as run_id:
        data_cfg.pop("fold", None)
        if isinstance(data_cfg.get("source"), dict):
            data_cfg["source"].pop("fold", None)
        resolved = {"model": source.spec, "model_digest": digest, "data": data_cfg,
                    "probe": {"layer": layer, "layer_setting": str(settings.layer), "pooling": list(pooling), "C_grid": grid,
                              "max_iter": int(settings.get("max_iter", 2000))}}
        chosen = {"probe.C": fits[0].C} if len(fits) == 1 else {f"probe.C.fold{k}": f.C for k, f in enumerate(fits)}
        tracking.log_params(client, run_id, {**tracking.flatten(resolved), **chosen, "folds": len(fits),
                                             "tracks": sum(len(fits[0].labels[s]) for s in SPLITS),
                                             "embedding_dim": embedder.dim if embedder else 0})
        client.log_text(run_id, OmegaConf.to_yaml(resolved), "config.yaml")
        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, 0) for k, v in metrics.items()]
        for i in range(0, len(batch), 500):
            client.log_batch(run_id, metrics=batch[i:i + 500])
        tracking.log_json(client, run_id, [{str(c): a for c, a in f.val_acc.items()} for f in fits],
                          "probe/val_acc_per_C.json")
        with tempfile.TemporaryDirectory() as tmp:
            for k, fit in enumerate(fits):
                name = "probe.safetensors" if len(fits) == 1 else f"probe_fold{k}.safetensors"
                write_probe(Path(tmp) / name, fit.head)
                client.log_artifact(run_id, str(Path(tmp) / name), "probe")
        model_uri = None
        if servable_reason(fits) is None:
            # The probe as a network (its standardiser folded into a per-window head): the run's
            # model, as a training run logs its own, for predict, serving, ensembles and LP-FT.
            served = probe_network(network.cpu(), fits[0].head, float(data_cfg["eval_hop_seconds"]))
            reported = {k: v for k, v in metrics.items() if k.startswith(("val/track_", "test/track_"))}
            model_uri = log_tagger_model(client, run_id, served, reported)
        return ProbeResult(run_id, metrics, classes, fits, cached, computed, tags, model_uri)


def servable_reason(fits: Sequence[FoldFit]) -> str | None:
    """None when the probe is logged as a model (`probe_network`), else why not, naming the setting."""
    if len(fits) != 1:
        return f"data.folds={len(fits)}: a probe of several folds has one head per fold; probe one split"
    return fits[0].head.servable()
