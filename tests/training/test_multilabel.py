"""Multi-label tagging (`task=multilabel`): `;`-separated labels in a CSV manifest, a sigmoid/BCE
head, multilabel AUROC/AP, and top-k independent tags when tagging and serving."""

from __future__ import annotations

import base64
import itertools
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from mlflow import MlflowClient
from sklearn.metrics import roc_auc_score

from genre_lab.models import model_file as checkpoint
from genre_lab.config import compose
from genre_lab.data.synthetic import render_clip
from genre_lab.inference.evaluation import evaluate
from genre_lab.models.mlflow_model import save_tagger_model
from genre_lab.inference.tagger import Tagger
from genre_lab.training.fit import build, fit_and_test

SR = 16000
TAGS = ("classical", "disco", "metal")
#: Every single tag and every pair: a pair's clip is the two genres' clips mixed.
SETS = [(t,) for t in TAGS] + list(itertools.combinations(TAGS, 2))


def _write_set(root: Path, per_set: int, seconds: float = 3.0) -> Path:
    """Clips of the synthetic genres (easy), pairs mixed at equal level, and their manifest."""
    rows = ["path,label"]
    for s, tags in enumerate(SETS):
        for i in range(per_set):
            wave = sum(render_clip(t, seed=100 * s + i, seconds=seconds, sample_rate=SR) for t in tags) / len(tags)
            name = f"{'+'.join(tags)}_{i}.wav"
            sf.write(str(root / name), wave.astype(np.float32), SR)
            # Tags in either order, with a stray blank: the parser normalises both.
            rows.append(f"{name},{' ; '.join(tags[::-1] if i % 2 else tags)}")
    manifest = root / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def _data(manifest: Path, tmp_path: Path) -> list[str]:
    return [
        "data=csv", f"data.manifest={manifest}", f"data.sample_rate={SR}", "data.chunk_seconds=1.5",
        "data.eval_hop_seconds=1.5", "data.train_chunks_per_clip=4", "data.val_fraction=0.2",
        "data.test_fraction=0.2", f"data.cache_dir={tmp_path / 'cache'}", f"paths.root_dir={tmp_path}",
        "callbacks.progress_bar=null", "throughput_seconds=0",
    ]


def test_several_labels_need_task_multilabel(tmp_path: Path) -> None:
    manifest = _write_set(tmp_path, per_set=3, seconds=1.0)
    cfg = compose([*_data(manifest, tmp_path), "data.chunk_seconds=0.5", "data.eval_hop_seconds=0.5"])
    with pytest.raises(ValueError, match=r"has 2 labels \(.*\); train with task=multilabel"):
        build(cfg)
    cfg = compose([*_data(manifest, tmp_path), "data.chunk_seconds=0.5", "data.eval_hop_seconds=0.5", "task=multilabel"])
    datamodule, model = build(cfg)
    assert datamodule.classes == list(TAGS) and model.multilabel
    _, target = datamodule.train_dataloader().dataset[0]
    assert target.dtype == torch.float32 and target.shape == (3,) and target.sum() >= 1
    pairs = [tags for split in datamodule.splits.values() for tags in split.tag_sets() if len(tags) == 2]
    assert len(pairs) == 3 * 3  # every mixed clip kept both of its tags


@pytest.mark.slow
def test_multilabel_trains_evaluates_tags_and_serves(tmp_path: Path, mlflow_uri: str) -> None:
    manifest = _write_set(tmp_path, per_set=10)
    cfg = compose([*_data(manifest, tmp_path), "task=multilabel", "model=cnn", "trainer.max_epochs=8",
                   "callbacks.early_stopping=null"], output_dir=tmp_path / "out")
    result = fit_and_test(cfg)

    # Multilabel metrics, per chunk and per track; no single-label ones (a confusion matrix of
    # tag sets means nothing).
    metrics = MlflowClient(mlflow_uri).get_run(result.run_id).data.metrics
    for level in ("chunk", "track"):
        for name in ("auroc", "pr_auc", "acc", "f1"):
            assert f"test/{level}_{name}" in metrics, (level, name)
        assert f"test/{level}_top2_acc" not in metrics
    print("\nmultilabel test metrics:", {k: round(v, 3) for k, v in metrics.items() if k.startswith("test/")})
    assert metrics["test/track_auroc"] > 0.85, metrics  # chance: 0.5

    # The task travels in the checkpoint: loading gives a sigmoid tagger.
    spec, _ = checkpoint.read(result.best_checkpoint)
    assert spec.task == "multilabel"
    tagger = Tagger.load(result.best_checkpoint, device="cpu")
    assert tagger.multilabel
    datamodule, _ = build(cfg)
    test = datamodule.splits["test"]
    truth, scores = [], []
    for clip, tags in zip(test.ids, test.tag_sets()):
        tagged = tagger.tag(str(manifest.parent / clip), k=3)
        assert tagged.error is None, tagged.error
        probs = {g.label: g.probability for g in tagged.genres}
        assert sorted(probs) == sorted(TAGS)
        truth.append([i in tags for i in range(3)])
        scores.append([probs[t] for t in TAGS])
    # Independent probabilities, not one distribution: they do not sum to 1.
    assert not np.allclose(np.sum(scores, 1), 1.0, atol=1e-3)
    auroc = roc_auc_score(np.array(truth), np.array(scores), average="macro")
    assert auroc == pytest.approx(metrics["test/track_auroc"], abs=1e-4)  # tagging == evaluation

    # `genre_lab.cli.evaluate` on the run gives the same multilabel metrics as the training run's test.
    evaluated = evaluate(compose([f"run={result.run_id}", "progress=false"], config_name="evaluate"))
    for key in ("test/track_auroc", "test/track_pr_auc", "test/chunk_auroc"):
        assert evaluated.metrics[key] == pytest.approx(metrics[key], abs=1e-5), key

    # Serving: the pyfunc model answers each record's top-k tags with the same probabilities.
    folder = save_tagger_model(tmp_path / "served", result.best_checkpoint)
    served = mlflow.pyfunc.load_model(str(folder))
    path = manifest.parent / test.ids[0]
    record = {"audio_base64": base64.b64encode(path.read_bytes()).decode()}
    rows = served.predict(pd.DataFrame([record]), params={"top_k": 2}).to_dict("records")
    assert rows[0]["error"] is None and len(rows[0]["genres"]) == 2
    local = {g.label: g.probability for g in tagger.tag(str(path), k=3).genres}
    for genre in rows[0]["genres"]:
        assert genre["probability"] == pytest.approx(local[genre["label"]], abs=1e-5)


def test_task_is_part_of_the_model_spec() -> None:
    cfg = compose(["model=cnn", "task=multilabel"])
    spec = checkpoint.ModelSpec.from_config(cfg, list(TAGS))
    assert spec.task == "multilabel" and spec.to_dict()["task"] == "multilabel"
    assert checkpoint.ModelSpec.from_dict(spec.to_dict()).multilabel
    older = {k: v for k, v in spec.to_dict().items() if k != "task"}  # written before tasks existed
    assert checkpoint.ModelSpec.from_dict(older).task == "multiclass"
    with pytest.raises(checkpoint.CheckpointError, match="task='regression' must be one of multiclass, multilabel"):
        checkpoint.ModelSpec.from_dict({**spec.to_dict(), "task": "regression"})
