"""Fine-tuning: init_from a training run into a model for other classes on a folder dataset,
lineage read back with MlflowClient; freezing keeps weights and BatchNorm statistics fixed;
a parent that does not fit is refused before any run starts."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf
import torch
from mlflow import MlflowClient

from genre_lab.config import compose
from genre_lab.data.synthetic import render_clip
from genre_lab.training.lightning_module import GenreClassifier
from genre_lab.training.fit import fit_and_test
from genre_lab.training.transfer import initialise_from
from tests.conftest import TINY
from tests.training_procs import train_in_own_store


@pytest.fixture(scope="module")
def parent(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Path]:
    """A CNN trained on the synthetic genres (dataset A)."""
    root = tmp_path_factory.mktemp("transfer")
    result, uri = train_in_own_store(root, ["model=cnn", "trainer.max_epochs=3", "throughput_seconds=0"], "parent")
    return result.run_id, uri, root


def _folder(root: Path) -> Path:
    """Dataset B: three classes the parent never saw, as real files on disk."""
    folder = root / "b"
    for label, genre in (("brass", "jazz"), ("drums", "metal"), ("strings", "classical")):
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i in range(10):
            sf.write(folder / label / f"{i}.flac", render_clip(genre, 100 + i, 4.0, 16000), 16000)
    return folder


@pytest.mark.slow
def test_fine_tune_a_run_on_other_classes_records_lineage(parent, monkeypatch) -> None:
    run_id, uri, root = parent
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("XDG_CACHE_HOME", str(root / "cache"))
    folder = _folder(root)
    tiny = [o for o in TINY if not o.startswith("data.source")]
    cfg = compose([*tiny, "data=folder", f"data.root={folder}", "data.sample_rate=16000", "data.val_fraction=0.2",
                   "data.test_fraction=0.2", f"data.cache_dir={root / 'cache'}", "model=cnn", f"init_from={run_id}",
                   "model.freeze=all_but_last_block", "model.optimizer.backbone_lr_scale=0.5", "trainer.max_epochs=4",
                   "throughput_seconds=0", f"paths.root_dir={root}"], output_dir=root / "child")
    child = fit_and_test(cfg)
    assert child.classes == ["brass", "drums", "strings"]
    assert child.metrics["test/track_acc"] >= 0.6  # three classes: chance is 0.33
    run = MlflowClient(uri).get_run(child.run_id)
    assert run.data.tags["genre_lab.parent_run_id"] == run_id
    assert run.data.tags["genre_lab.init_from"] == run_id and run_id in run.data.tags["mlflow.note.content"]
    assert run.data.params["init_from"] == run_id and run.data.params["model.freeze"] == "all_but_last_block"

    # The frozen first conv blocks are exactly the parent's; the last one and the head changed.
    from genre_lab.models import model_file as checkpoint
    from genre_lab.models.loading import resolve

    parent_weights = checkpoint.read(resolve(run_id, uri).checkpoint)[1]
    child_weights = checkpoint.read(child.best_checkpoint)[1]
    first = "backbone.blocks.0.0.weight"
    last = "backbone.blocks.3.0.weight"
    assert torch.equal(parent_weights[first], child_weights[first])
    assert torch.equal(parent_weights["backbone.blocks.0.1.running_mean"], child_weights["backbone.blocks.0.1.running_mean"])
    assert not torch.equal(parent_weights[last], child_weights[last])
    assert child_weights["head.weight"].shape[0] == 3 and parent_weights["head.weight"].shape[0] == 10


def test_freezing_keeps_weights_and_batchnorm_statistics() -> None:
    model = GenreClassifier.from_config(compose([*TINY, "model=crnn", "model.freeze=backbone"]), ["a", "b"])
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    opt = model.configure_optimizers()["optimizer"]
    model.train()
    assert not model.frontend.training and not model.backbone.training and model.head.training
    loss = model.training_step((torch.randn(4, 32000) * 0.1, torch.tensor([0, 1, 0, 1])), 0)
    loss.backward()
    opt.step()
    after = model.net.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("head.") for k in changed), changed


def test_backbone_learning_rate_scale_makes_two_groups() -> None:
    model = GenreClassifier.from_config(compose([*TINY, "model=cnn", "model.optimizer.backbone_lr_scale=0.1"]), ["a", "b"])
    groups = model.configure_optimizers()["optimizer"].param_groups
    assert [g["lr"] for g in groups] == pytest.approx([0.003, 0.0003])
    assert len(groups[0]["params"]) == 2  # the head's weight and bias
    with pytest.raises(ValueError, match="model.freeze must be one of"):
        GenreClassifier.from_config(compose([*TINY, "model=cnn", "model.freeze=everything"]), ["a", "b"])


def test_parent_that_does_not_fit_is_refused_naming_the_setting(parent, monkeypatch) -> None:
    run_id, uri, root = parent
    monkeypatch.setenv("XDG_CACHE_HOME", str(root / "cache"))
    other = GenreClassifier.from_config(compose([*TINY, "model=crnn"]), ["x", "y"])
    with pytest.raises(ValueError, match=r"model.backbone._target_: 'genre_lab.models.CNN' \(parent\)"):
        initialise_from(other, run_id, uri)
    wide = GenreClassifier.from_config(compose([*TINY, "model=cnn", "features.frontend.n_mels=96"]), ["x", "y"])
    with pytest.raises(ValueError, match=r"features.frontend.n_mels: 64 \(parent\) vs 96"):
        initialise_from(wide, run_id, uri)
    with pytest.raises(ValueError, match="unknown pretrained model 'pretrained:vggish'"):
        initialise_from(other, "pretrained:vggish", uri)
    # Same architecture and classes: everything, head included, is copied.
    same = GenreClassifier.from_config(compose([*TINY, "model=cnn"]), fit_classes(run_id, uri))
    assert initialise_from(same, run_id, uri).head == "copied"


def test_init_from_a_pretrained_network_copies_its_front_end_and_backbone(tmp_path: Path, monkeypatch) -> None:
    """`pretrained:` goes through the same `load_model` as every other source: the port's
    front-end and backbone weights land in the model; a head for other classes starts fresh."""
    from genre_lab.models.pretrained import zoo

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model = GenreClassifier.from_config(compose(["model=musicnn", "model.weights=none"]), ["a", "b"])
    head = model.head.weight.detach().clone()
    assert initialise_from(model, "pretrained:musicnn-msd").head == "new"
    frontend, backbone = zoo.build_pretrained("pretrained:musicnn-msd")
    own = model.net.state_dict()
    for prefix, part in (("frontend", frontend), ("backbone", backbone)):
        assert all(torch.equal(own[f"{prefix}.{k}"], v) for k, v in part.state_dict().items()), prefix
    assert torch.equal(model.head.weight, head)


def fit_classes(run_id: str, uri: str) -> list[str]:
    from genre_lab.models import model_file as checkpoint
    from genre_lab.models.loading import resolve

    return list(checkpoint.read(resolve(run_id, uri).checkpoint)[0].classes)


def test_unknown_init_from_fails_before_any_run(tmp_path: Path, mlflow_uri: str) -> None:
    cfg = compose([*TINY, "model=cnn", "init_from=pretrained:nope", f"paths.root_dir={tmp_path}"], output_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown pretrained model"):
        fit_and_test(cfg)
    assert MlflowClient(mlflow_uri).search_runs([e.experiment_id for e in MlflowClient(mlflow_uri).search_experiments()]) == []


def test_finetune_sweep_space_composes_into_valid_models(tmp_path: Path) -> None:
    """`sweep=finetune` searches freezing, the backbone's LR scale and head settings: every
    value it can draw composes into a model whose trainable parts follow it."""
    import optuna

    from genre_lab.sweep.space import parse_space

    cfg = compose(["sweep=finetune", f"paths.root_dir={tmp_path}"], config_name="sweep", output_dir=tmp_path)
    params = {p.path: p for p in parse_space(cfg.sweep.space, cfg)}
    assert {"model.freeze", "model.optimizer.backbone_lr_scale", "model.label_smoothing"} <= set(params)
    trial = optuna.trial.FixedTrial({"model.freeze": "backbone", "model.optimizer.lr": 1e-3,
                                     "model.optimizer.backbone_lr_scale": 0.1, "model.backbone.dropout": 0.3,
                                     "model.label_smoothing": 0.1})
    overrides = [p.override(p.suggest(trial)) for p in params.values()]
    model = GenreClassifier.from_config(compose(["model=musicnn", "model.weights=none", *overrides]), ["a", "b"])
    trainable = {n.split(".")[0] for n, p in model.net.named_parameters() if p.requires_grad}
    assert trainable == {"head"} and model.label_smoothing == 0.1
