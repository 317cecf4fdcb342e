"""Files written by earlier versions still load and answer as they did: a Lightning checkpoint and
a logged model folder from before the LightningModule held its network as `net`
(`tests/fixtures/make_legacy_models.py` wrote them), through the predict command, `Tagger.load`,
`init_from` and a Lightning restore (resume's path)."""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from genre_lab import Tagger
from genre_lab.models import model_file as checkpoint
from genre_lab.models.mlflow_model import export_weights
from genre_lab.training.lightning_module import GenreClassifier
from genre_lab.cli.predict import main as predict_main
from genre_lab.training.resume import AtomicCheckpointIO
from genre_lab.training.transfer import initialise_from
from tests.fixtures.make_legacy_models import CHECKPOINT, CLASSES, EXPECTED, LOGGED_MODEL, waves, write_waves

TOLERANCE = 1e-5
EXPECTED_RESULTS = json.loads(EXPECTED.read_text())["inputs"]


def _assert_as_recorded(name: str, distribution: dict[str, float], top: str) -> None:
    expected = EXPECTED_RESULTS[name]
    assert top == expected["top"], name
    assert distribution == pytest.approx(expected["probabilities"], abs=TOLERANCE), name


def _assert_tags_as_recorded(model: torch.nn.Module) -> None:
    tagger = Tagger(model.eval())
    for name, wave in waves(tagger.sample_rate).items():
        result = tagger.tag(wave, k=len(CLASSES))
        _assert_as_recorded(name, result.distribution, result.genres[0].label)


def test_the_fixtures_are_of_the_old_layout() -> None:
    """The checkpoint's weights are the bare network keys, as written before `net`."""
    state = torch.load(CHECKPOINT, map_location="cpu", weights_only=True)
    assert state["state_dict"] and not any(k.startswith(checkpoint.NET_PREFIX) for k in state["state_dict"])


def test_predict_command_on_an_old_checkpoint(tmp_path: Path) -> None:
    sample_rate = checkpoint.read(CHECKPOINT)[0].sample_rate
    paths = write_waves(tmp_path / "songs", sample_rate)
    out = tmp_path / "tags.json"
    assert predict_main([str(CHECKPOINT), *map(str, paths.values()), "--format", "json", "--output", str(out),
                         "--top-k", str(len(CLASSES)), "--no-progress", "--device", "cpu"]) == 0
    rows = {Path(row["path"]).stem: row for row in json.loads(out.read_text())}
    assert set(rows) == set(EXPECTED_RESULTS)
    for name, row in rows.items():
        genres = {g["label"]: g["probability"] for g in row["genres"]}
        _assert_as_recorded(name, genres, row["genres"][0]["label"])


@pytest.mark.parametrize("source", [CHECKPOINT, LOGGED_MODEL], ids=["checkpoint", "logged_model"])
def test_tagger_loads_old_files(source: Path) -> None:
    tagger = Tagger.load(source, device="cpu")
    for name, wave in waves(tagger.sample_rate).items():
        result = tagger.tag(wave, k=len(CLASSES))
        _assert_as_recorded(name, result.distribution, result.genres[0].label)


def test_init_from_an_old_checkpoint_copies_every_weight() -> None:
    spec = checkpoint.read(CHECKPOINT)[0]
    model = GenreClassifier.from_spec(spec)
    lineage = initialise_from(model, str(CHECKPOINT))
    assert lineage.head == "copied"
    _assert_tags_as_recorded(model.net)


def test_lightning_restores_an_old_checkpoint() -> None:
    """Resume's path: `Trainer.fit(ckpt_path=...)` through genre_lab's checkpoint IO, with the
    module's `on_load_checkpoint` remapping the keys; the run had finished its steps, so the
    restored weights are the file's."""
    state = torch.load(CHECKPOINT, map_location="cpu", weights_only=True)
    model = GenreClassifier.from_spec(checkpoint.read(CHECKPOINT)[0])
    trainer = pl.Trainer(max_steps=state["global_step"], limit_val_batches=0, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                         plugins=[AtomicCheckpointIO()])
    samples = int(model.spec.sample_rate * model.spec.chunk_seconds)
    data = torch.utils.data.TensorDataset(torch.zeros(4, samples), torch.zeros(4, dtype=torch.long))
    trainer.fit(model, torch.utils.data.DataLoader(data, batch_size=4), ckpt_path=str(CHECKPOINT))
    assert trainer.global_step == state["global_step"]
    for key, value in state["state_dict"].items():
        assert torch.equal(model.state_dict()[checkpoint.NET_PREFIX + key], value), key
    _assert_tags_as_recorded(model.net)


def test_new_files_keep_the_network_layout(tmp_path: Path) -> None:
    """A model file written now has the keys old ones have; a Lightning checkpoint has `net.`."""
    model = GenreClassifier.from_spec(checkpoint.read(CHECKPOINT)[0])
    assert all(k.startswith(checkpoint.NET_PREFIX) for k in model.state_dict())
    export_weights(model, tmp_path / "weights.pt")
    written = torch.load(tmp_path / "weights.pt", weights_only=True)["state_dict"]
    old = torch.load(LOGGED_MODEL / "artifacts" / "weights.pt", weights_only=True)["state_dict"]
    assert list(written) == list(old)
