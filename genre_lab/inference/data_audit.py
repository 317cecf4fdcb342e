"""`genre-lab audit`: a dataset's duplicates, leaks, balance and unused files, before training.

The dataset is loaded as training loads it (the same config, screening and decode cache), but
nothing is refused: every finding of `genre_lab.data.dataset_audit` is written to `audit.json`
and logged as one MLflow run (`run_type=audit`, counts as metrics, the JSON as an artifact),
which reports, ensembles and the notebook leave out like every run that is not a training.

Near-duplicates are found on embeddings: a model's (`model`: anything `load_model` takes but an
ensemble, its backbone's output averaged over the clip's windows) or, by default, the
deterministic spectral `fingerprint`, which needs no model or download and finds re-encoded,
re-gained and lightly noisy copies; a model's embedding also groups clips that merely sound
alike, so its threshold needs care.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchaudio
from mlflow.entities import Metric
from omegaconf import DictConfig, OmegaConf

from genre_lab import registry
from genre_lab.data import SPLITS, GenreDataModule
from genre_lab.data.dataset_audit import (
    MAX_PAIRS, PROBLEM_KINDS, artists_across_splits, class_balance, clips_of, exact_duplicates, fingerprint,
    near_duplicates, sample_hash, unused_files, waves_of,
)
from genre_lab.data.sources import terminal_progress
from genre_lab.inference.embedding import Embedder
from genre_lab.inference.tagger import Tagger
from genre_lab.tracking import mlflow_runs as tracking
from genre_lab.training.quiet import quiet_third_party

log = logging.getLogger(__name__)

#: `embedding` of a report made without a model.
FINGERPRINT = "fingerprint"
#: The file the report is written to and logged as.
REPORT_NAME = "audit.json"


class AuditError(ValueError):
    """An audit setting that cannot be used; the message names it."""


@dataclass
class AuditResult:
    report: dict[str, Any]
    metrics: dict[str, float]
    run_id: str
    path: Path


def run_audit(cfg: DictConfig, model: str | None = None, threshold: float = 0.98,
              output: str | Path | None = None) -> AuditResult:
    """Audit the dataset `cfg.data` composes; write `audit.json` under `output` (default
    `<root>/outputs/audit/<dataset>`) and log it as an MLflow run in `cfg.experiment_name`."""
    if not -1.0 < threshold <= 1.0:
        raise AuditError(f"--near-threshold must be a cosine similarity in (-1, 1], got {threshold}")
    quiet_third_party()
    uri = cfg.get("tracking_uri") or tracking.tracking_uri()
    tagger = Tagger.load(model, uri, device="cpu", one_model_for="audit") if model else None
    # throw_on_missing: an unset `???` (data.root) is reported by its own name.
    data = OmegaConf.to_container(OmegaConf.select(cfg, "data", throw_on_missing=True), resolve=True,
                                  throw_on_missing=True)
    datamodule: GenreDataModule = registry.build(data, registry.DATA, "data")
    source, rate = datamodule.source, datamodule.sample_rate
    # As training loads it (short clips left out under short_clips=skip), without its refusals.
    splits = source.load(rate, min_samples=datamodule.chunk if datamodule.short_clips == "skip" else 0)
    clips = clips_of(splits)
    waves = list(waves_of(splits))
    hashes = [sample_hash(w) for w in waves]
    embeddings = _embed(waves, rate, tagger)
    groups = exact_duplicates(clips, hashes)
    near, reached = near_duplicates(clips, hashes, embeddings, threshold) if clips else ([], 0)
    artists = artists_across_splits(clips)
    unused = unused_files(splits, list(source.unassigned))
    report: dict[str, Any] = {
        "dataset": source.name,
        "classes": list(source.classes),
        "sample_rate": rate,
        "clips": {split: len(splits[split]) for split in SPLITS},
        "embedding": tagger.source if tagger is not None else FINGERPRINT,
        "near_threshold": threshold,
        "exact_duplicates": groups,
        "near_duplicates": near,
        # Pairs at or above the threshold, exact duplicates included; at most MAX_PAIRS are listed.
        "near_pairs_reached": reached,
        "near_pairs_truncated": reached > MAX_PAIRS,
        "artists_across_splits": artists,
        "class_balance": class_balance(splits, source.classes),
        "unused_files": unused,
        # File sources: each pair of files with identical decoded audio, with paths and splits.
        "identical_files": [dict(p) for p in source.identical],
    }
    metrics = _counts(report)
    report["counts"] = metrics
    folder = Path(output) if output else Path(str(cfg.paths.root_dir)) / "outputs" / "audit" / source.name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / REPORT_NAME
    path.write_text(_json(report))
    run_id = _log_run(cfg, uri, data, report, metrics)
    return AuditResult(report, metrics, run_id, path)


def _embed(waves: list[np.ndarray], rate: int, tagger: Tagger | None) -> np.ndarray:
    """One row per wave: the model's mean window embedding, or the `fingerprint`."""
    rows = []
    embedder = Embedder(tagger) if tagger is not None else None
    what = "fingerprinting clips" if tagger is None else f"embedding clips with {tagger.source}"
    with terminal_progress() as progress:
        task = progress.add_task(what, total=len(waves))
        for wave in waves:
            if tagger is None or embedder is None:
                rows.append(fingerprint(np.array(wave), rate))
            else:
                x = torch.from_numpy(np.array(wave, dtype=np.float32))
                if tagger.sample_rate != rate:
                    x = torchaudio.functional.resample(x, rate, tagger.sample_rate)
                emb, _ = embedder.windows(x)
                rows.append(emb.mean(0).numpy())
            progress.advance(task)
    return np.stack(rows) if rows else np.zeros((0, 1), np.float32)


def _counts(report: dict[str, Any]) -> dict[str, float]:
    """The report's counts, as the run's metrics."""
    groups, near, unused = report["exact_duplicates"], report["near_duplicates"], report["unused_files"]
    counts: dict[str, float] = {f"clips/{split}": n for split, n in report["clips"].items()}
    counts.update({
        "exact_duplicate_groups": len(groups),
        "exact_duplicate_clips": sum(len(g["clips"]) for g in groups),
        "exact_duplicate_groups_across_splits": sum(g["across_splits"] for g in groups),
        "near_duplicate_pairs": len(near),
        "near_duplicate_pairs_across_splits": sum(p["across_splits"] for p in near),
        "unused_files": len(unused),
        **{f"unused_files/{kind}": sum(u["kind"] == kind for u in unused) for kind in PROBLEM_KINDS},
    })
    if report["artists_across_splits"] is not None:
        counts["artists_across_splits"] = len(report["artists_across_splits"])
    return {k: float(v) for k, v in counts.items()}


def _log_run(cfg: DictConfig, uri: str, data: Any, report: dict[str, Any], metrics: dict[str, float]) -> str:
    client = tracking.open_client(uri)
    experiment = tracking.experiment_id(str(cfg.experiment_name), uri)
    tags = {"run_type": "audit", "dataset": report["dataset"], "embedding": report["embedding"],
            **tracking.source_tags()}
    name = cfg.get("run_name") or f"audit-{report['dataset']}"
    with tracking.tracked_run(client, experiment, str(name), tags) as run_id:
        tracking.log_params(client, run_id, {**tracking.flatten({"data": data}), "near_threshold": report["near_threshold"]})
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
        client.log_text(run_id, _json(report), REPORT_NAME)
    return run_id


def _json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False)
