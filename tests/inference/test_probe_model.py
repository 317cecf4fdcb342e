"""A probe run as a model: a mean-pooled probe of a tiny CNN's penultimate layer is logged as a
network (its standardiser folded into the head), which `predict`, the served pyfunc, ensembles
and `init_from` (LP-FT) take by the probe's run id; probes of other settings and damaged model
files are refused with one line naming the setting or file."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from urllib.parse import urlparse

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from mlflow import MlflowClient

from genre_lab import registry
from genre_lab.audio.windows import windows
from genre_lab.cli import main as genre_lab_main
from genre_lab.config import compose
from genre_lab.inference.evaluation import evaluate, training_data_config
from genre_lab.inference.linear_probe import ProbeResult, WindowEmbedder, pool, run_probe
from genre_lab.inference.tagger import Tagger
from genre_lab.models.ensemble import EnsembleClassifier
from genre_lab.models.loading import ModelSourceError, load_model
from genre_lab.models.network import GenreNet
from genre_lab.training.fit import fit_and_test
from genre_lab.training.lightning_module import GenreClassifier
from genre_lab.training.transfer import initialise_from
from tests.conftest import TINY
from tests.training_procs import train_in_own_store

pytestmark = pytest.mark.slow

CNN = [*TINY, "model=cnn", "throughput_seconds=0"]


class Store:
    """The module's MLflow store: a tiny trained CNN, a mean-pooled probe of it, the probe's
    fitted head, and the probe's test tracks."""

    def __init__(self, root: Path, uri: str, trained: str, probe: ProbeResult) -> None:
        self.root, self.uri, self.trained, self.probe, self.model_uri = root, uri, trained, probe.run_id, probe.model_uri
        client = MlflowClient(uri)
        self.head = probe.folds[0].head
        datamodule = registry.build(training_data_config(client, self.probe), registry.DATA, "data")
        datamodule.setup()
        self.rate, self.chunk, self.hop = datamodule.sample_rate, datamodule.chunk, datamodule.hop
        test = datamodule.splits["test"]
        self.waves = [np.asarray(w, dtype=np.float32) for w in test.waves]
        self.labels = list(test.labels)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("probe_model")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(root / "xdg"))
        result, uri = train_in_own_store(root, ["model=cnn", "throughput_seconds=0", "trainer.max_epochs=2"], "train")
        trained = result.run_id
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        cfg = compose([f"paths.root_dir={root}", f"tracking_uri={uri}", "probe.pooling=[mean]", "probe.device=cpu"],
                      config_name="probe")
        cfg.embedding_model = trained
        result = run_probe(cfg)
    assert result.model_uri is not None
    return Store(root, uri, trained, result)


@pytest.fixture()
def env(store: Store, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)
    monkeypatch.setenv("XDG_CACHE_HOME", str(store.root / "xdg"))
    monkeypatch.setenv("COLUMNS", "2000")  # rich: an error message is one line, unwrapped
    return store


def probe_decisions(store: Store) -> np.ndarray:
    """(tracks, classes): the probe's own track probabilities, from the trained model's window
    embeddings pooled by the mean, standardised and put through the logistic regression."""
    embedder = WindowEmbedder(load_model(store.trained, store.uri).network, "penultimate", store.chunk, store.hop)
    return store.head.probabilities(pool([embedder(w) for w in store.waves], ["mean"]))


def test_probe_run_is_a_network_whose_mean_window_logits_are_the_probe(env: Store) -> None:
    net = load_model(env.probe, env.uri).network
    assert isinstance(net, GenreNet) and net.classes == list(env.head.classes) and net.task == "multiclass"
    weight, bias = env.head.folded()
    assert torch.equal(net.head.weight, torch.from_numpy(weight)) and torch.equal(net.head.bias, torch.from_numpy(bias))
    # The front end and backbone are the probed model's, unchanged.
    trained = load_model(env.trained, env.uri).network.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in net.state_dict().items() if not k.startswith("head."))
    # Exact for the mean: the folded head's mean window logits are the probe's track logits.
    expected = probe_decisions(env)
    with torch.inference_mode():
        for wave, p in zip(env.waves, expected):
            logits = net(windows(wave, env.chunk, env.hop)[0]).mean(0)
            assert np.allclose(logits.softmax(0).numpy(), p, atol=1e-4)
    # runs:/<probe run>/model is the same network.
    by_uri = load_model(f"runs:/{env.probe}/model", env.uri)
    assert by_uri.source.run_id == env.probe
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in by_uri.network.state_dict().items())


def test_predict_on_the_probe_run_tags_files_as_the_probe_decides(env: Store, tmp_path: Path) -> None:
    files = []
    for i, wave in enumerate(env.waves):
        files.append(tmp_path / f"track{i:02d}.wav")
        sf.write(files[-1], wave, env.rate, subtype="FLOAT")
    out = tmp_path / "tags.json"
    code = genre_lab_main(["predict", env.probe, *map(str, files), "--format", "json", "--output", str(out),
                           "--tracking-uri", env.uri, "--no-progress", "--top-k", str(len(env.head.classes))])
    assert code == 0
    rows = {Path(r["path"]).name: r for r in json.loads(out.read_text())}
    expected = probe_decisions(env)
    agree = 0
    for path, p in zip(files, expected):
        row = rows[path.name]
        assert row["error"] is None and {g["label"] for g in row["genres"]} == set(env.head.classes)
        assert sum(g["probability"] for g in row["genres"]) == pytest.approx(1.0, abs=1e-4)
        agree += row["genres"][0]["label"] == env.head.classes[int(p.argmax())]
    print(f"predict's top-1 equals the probe's on {agree}/{len(files)} test tracks")
    assert agree == len(files)


def test_evaluate_on_the_probe_run_reproduces_the_probes_test_metrics(env: Store) -> None:
    """`evaluate run=<probe run>` (no data=: the probe's dataset) through Lightning's test loop
    gives the probe's own logged track metrics: the same windows, the same decision."""
    result = evaluate(compose([f"run={env.probe}", "progress=false"], config_name="evaluate"))
    logged = MlflowClient(env.uri).get_run(env.probe).data.metrics
    for name in ("acc", "balanced_acc", "f1"):
        assert result.metrics[f"test/track_{name}"] == pytest.approx(logged[f"test/track_{name}"], abs=1e-6), name
    assert result.metrics["test/track_auroc"] == pytest.approx(logged["test/track_auroc"], abs=1e-3)


def test_served_pyfunc_of_the_probe_run_answers(env: Store) -> None:
    model = mlflow.pyfunc.load_model(f"runs:/{env.probe}/model")
    wave = env.waves[0]
    answer = model.predict(pd.DataFrame({"waveform": [wave.tolist()], "sample_rate": [env.rate]}), params={"top_k": 2})
    row = answer.iloc[0]
    assert row["error"] is None and len(row["genres"]) == 2
    assert row["genres"][0]["label"] == env.head.classes[int(probe_decisions(env)[0].argmax())]
    assert model.metadata.metadata["genre_lab_run_id"] == env.probe


def test_ensemble_of_a_probe_and_a_trained_model(env: Store) -> None:
    assert genre_lab_main(["ensemble", env.trained, env.probe, "--tracking-uri", env.uri]) == 0
    client = MlflowClient(env.uri)
    exp = client.get_run(env.probe).info.experiment_id
    (run,) = [r for r in client.search_runs([exp]) if r.data.tags.get("run_type") == "ensemble"]
    ensemble = load_model(run.info.run_id, env.uri).network
    assert isinstance(ensemble, EnsembleClassifier) and ensemble.run_ids == [env.trained, env.probe]
    result = Tagger(ensemble).tag(env.waves[1], env.rate)
    assert result.ok and sum(result.distribution.values()) == pytest.approx(1.0, abs=1e-4)


def test_lp_ft_starts_from_the_probe_head_and_trains(env: Store) -> None:
    cfg = compose([*CNN, "trainer.max_epochs=1", f"paths.root_dir={env.root}", f"init_from={env.probe}",
                   "model.freeze=none"], output_dir=env.root / "lpft")
    model = GenreClassifier.from_config(cfg, list(env.head.classes))
    lineage = initialise_from(model, env.probe, env.uri)
    # Right after init_from, before any optimiser step: the probe's folded head.
    weight, bias = env.head.folded()
    assert lineage.head == "the probe's (LP-FT)" and lineage.parent_run_id == env.probe
    assert torch.equal(model.head.weight.detach(), torch.from_numpy(weight))
    assert torch.equal(model.head.bias.detach(), torch.from_numpy(bias))
    trained = load_model(env.trained, env.uri).network.state_dict()
    assert torch.equal(model.net.state_dict()["backbone.blocks.0.0.weight"], trained["backbone.blocks.0.0.weight"])
    # The same through training: it runs, records the lineage, and moves the head.
    result = fit_and_test(cfg)
    run = MlflowClient(env.uri).get_run(result.run_id)
    assert run.data.tags["genre_lab.parent_run_id"] == env.probe and "LP-FT" in run.data.tags["mlflow.note.content"]
    assert 0.0 <= result.metrics["test/track_acc"] <= 1.0
    tuned = load_model(result.run_id, env.uri).network
    assert not torch.equal(tuned.head.weight, torch.from_numpy(weight))
    # A probe of other classes is no LP-FT start.
    other = GenreClassifier.from_config(cfg, ["a", "b"])
    with pytest.raises(ValueError, match="linear probe of classes"):
        initialise_from(other, env.probe, env.uri)


def test_probe_of_other_pooling_logs_no_model_and_is_refused_naming_it(env: Store, capsys) -> None:
    cfg = compose([f"paths.root_dir={env.root}", f"tracking_uri={env.uri}", "probe.pooling=[mean,std]",
                   "probe.device=cpu"], config_name="probe")
    cfg.embedding_model = env.trained
    result = run_probe(cfg)
    assert result.model_uri is None and result.computed == 0  # the embeddings came from the cache
    with pytest.raises(ModelSourceError, match="probe.pooling=mean"):
        load_model(result.run_id, env.uri)
    model = GenreClassifier.from_config(compose([*CNN, f"paths.root_dir={env.root}"]), list(env.head.classes))
    with pytest.raises(ValueError, match="probe.pooling"):
        initialise_from(model, result.run_id, env.uri)
    song = env.root / "song.wav"
    sf.write(song, env.waves[0], env.rate)
    assert genre_lab_main(["predict", result.run_id, str(song), "--tracking-uri", env.uri]) == 2
    assert "probe.pooling=mean" in one_error(capsys.readouterr().err)


def one_error(err: str) -> str:
    """The one error message in a command's stderr (rich wraps it to the console's width)."""
    assert "Traceback" not in err and err.count("error:") == 1, err
    return " ".join(err[err.index("error:"):].split())


class Payload:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_damaged_or_hostile_probe_model_is_refused_by_predict(env: Store, capsys) -> None:
    """The probe run's logged weights replaced, in the store itself, by NaN weights and by a
    pickle that would run code: `genre-lab predict <probe run>` refuses each with one line."""
    client = MlflowClient(env.uri)
    location = client.get_logged_model(env.model_uri.removeprefix("models:/")).artifact_location
    (weights,) = Path(urlparse(location).path).rglob("weights.pt")
    original = weights.read_bytes()
    song = env.root / "hostile.wav"
    sf.write(song, env.waves[0], env.rate)
    try:
        state = torch.load(weights, weights_only=True)
        state["state_dict"]["head.weight"][0, 0] = float("nan")
        torch.save(state, weights)
        assert genre_lab_main(["predict", env.probe, str(song), "--tracking-uri", env.uri]) == 2
        line = one_error(capsys.readouterr().err)
        assert "'head.weight' holds NaN" in line and "weights.pt" in line

        weights.write_bytes(pickle.dumps({"state_dict": Payload()}))
        assert genre_lab_main(["predict", env.probe, str(song), "--tracking-uri", env.uri]) == 2
        captured = capsys.readouterr()
        assert "weights.pt" in one_error(captured.err) and "unpickled!" not in captured.out + captured.err
    finally:
        weights.write_bytes(original)
    # The probe's own head file is no network: named as such, not unpickled.
    (env.root / "head").mkdir(exist_ok=True)
    head_file = client.download_artifacts(env.probe, "probe/probe.safetensors", str(env.root / "head"))
    assert genre_lab_main(["predict", head_file, str(song)]) == 2
    assert "linear probe's head" in one_error(capsys.readouterr().err)
