"""`genre-lab probe`: a linear probe of pretrained musicnn's embeddings on hard synthetic genres,
checked against scikit-learn fitted by hand, its embedding cache reused and hostile cache
entries refused, its MLflow run read back, and cross-validation over the folds of a folder."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from mlflow import MlflowClient
from omegaconf import OmegaConf
from safetensors import safe_open
from safetensors.numpy import load_file
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.preprocessing import StandardScaler

from genre_lab import registry
from genre_lab.cli import main as genre_lab_main
from genre_lab.config import compose
from genre_lab.data.synthetic import GENRES, synthetic_split
from genre_lab.inference.linear_probe import (EmbeddingCache, WindowEmbedder, check_pooling, embed_splits,
                                              model_digest, pool, run_probe)
from genre_lab.models import model_file as checkpoint
from genre_lab.models.embedding_layers import BEST_LAYERS
from genre_lab.models.loading import load_model
from genre_lab.models.probe_file import is_probe_file
from genre_lab.training.lightning_module import GenreClassifier
from tests.conftest import TINY
from tests.training_procs import train_in_own_store

MODEL = "pretrained:musicnn-msd"
RATE = 16000
#: Hard synthetic genres, few short clips: each clip is two 2.976 s musicnn windows.
CLIPS = {"train": 5, "val": 2, "test": 3}
DATA = ["data=synthetic", "data.source.difficulty=hard", "data.source.clip_seconds=3.5",
        "data.source.clips_per_class={train: %d, val: %d, test: %d}" % (CLIPS["train"], CLIPS["val"], CLIPS["test"])]
GRID = [0.001, 0.01, 0.1, 1.0]
TRACKS = len(GENRES) * sum(CLIPS.values())


def probe_config(root: Path, uri: str, *overrides: str, data: list[str] = DATA):
    """The probe of MODEL on `data`, of its penultimate layer unless `overrides` name one."""
    layer = [] if any(o.startswith("probe.layer=") for o in overrides) else ["probe.layer=penultimate"]
    cfg = compose([*data, f"paths.root_dir={root}", f"tracking_uri={uri}", f"probe.C_grid={GRID}", *layer, *overrides],
                  config_name="probe")
    cfg.embedding_model = MODEL
    return cfg


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One home folder (its embedding cache) and MLflow store for the module's probes."""
    root = tmp_path_factory.mktemp("probe")
    return root, f"sqlite:///{root / 'mlflow.db'}"


@pytest.fixture(scope="module")
def first(store: tuple[Path, str]):
    root, uri = store
    return run_probe(probe_config(root, uri))


def entries(root: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (root / ".cache" / "embeddings").rglob("*.npy")}


def test_probe_matches_scikit_learn_by_hand_and_beats_chance(first, store: tuple[Path, str]) -> None:
    root, _ = store
    assert first.computed == TRACKS and first.cached == 0
    acc = first.metrics["test/track_acc"]
    print("probe test accuracy", acc, "C", first.folds[0].C)
    assert acc >= 2.5 / len(GENRES), acc  # chance is 0.1
    # By hand: the same pooled embeddings (read back through the cache), scikit-learn's own
    # standardiser and logistic regression, C chosen on validation accuracy.
    network = load_model(MODEL).network
    cfg = probe_config(root, "sqlite://")
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    data_cfg.update(sample_rate=RATE, chunk_seconds=2.976, eval_hop_seconds=2.976)  # musicnn's windows
    datamodule = registry.build(data_cfg, registry.DATA, "data")
    datamodule.setup()
    embedder = WindowEmbedder(network, "penultimate", datamodule.chunk, datamodule.hop)
    data = embed_splits(datamodule, embedder, EmbeddingCache(cfg.probe.cache_dir), model_digest(network, network.config))
    assert data.computed == 0 and data.cached == TRACKS
    x = {s: pool(data.windows[s], ["mean", "std", "max"]) for s in ("train", "val", "test")}
    assert x["train"].shape == (len(GENRES) * CLIPS["train"], 600)
    scaler = StandardScaler().fit(x["train"])
    fits = {c: LogisticRegression(C=c, max_iter=2000).fit(scaler.transform(x["train"]), data.labels["train"]) for c in GRID}
    best = max(GRID, key=lambda c: accuracy_score(data.labels["val"], fits[c].predict(scaler.transform(x["val"]))))
    by_hand = accuracy_score(data.labels["test"], fits[best].predict(scaler.transform(x["test"])))
    assert abs(acc - by_hand) <= 0.01, (acc, by_hand, first.folds[0].C, best)


def test_second_probe_reuses_the_cache(first, store: tuple[Path, str]) -> None:
    root, uri = store
    before = entries(root)
    assert len(before) == TRACKS
    again = run_probe(probe_config(root, uri, "probe.pooling=[max,mean]"))
    assert again.computed == 0 and again.cached == TRACKS
    assert entries(root) == before  # nothing rewritten
    assert again.metrics["embed/computed_tracks"] == 0 and again.folds[0].head.pooling == ("max", "mean")


def test_run_reads_back_with_training_metric_names(first, store: tuple[Path, str], tmp_path: Path) -> None:
    _, uri = store
    client = MlflowClient(uri)
    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["run_type"] == "probe"
    for name in ("acc", "balanced_acc", "f1", "auroc", "ece"):
        assert 0.0 <= run.data.metrics[f"test/track_{name}"] <= 1.0, name
    assert run.data.metrics["test/track_acc"] == pytest.approx(first.metrics["test/track_acc"])
    assert run.data.params["probe.layer"] == "penultimate" and run.data.params["model"] == MODEL
    assert float(run.data.params["probe.C"]) in GRID
    # The fitted probe is logged as a probe file holding its head.
    path = client.download_artifacts(first.run_id, "probe/probe.safetensors", str(tmp_path))
    head = first.folds[0].head
    assert is_probe_file(path) and np.array_equal(load_file(path)["coef"], head.coef)
    assert head.classes == tuple(GENRES) and head.pooling == ("mean", "std", "max") and head.coef.shape == (10, 600)
    assert head.model_digest == run.data.params["model_digest"]


def test_hostile_cache_entries_are_embedded_again(first, store: tuple[Path, str],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    root, uri = store
    paths = sorted(entries(root))
    hostile = paths[:5]
    truncated, as_int, transposed, poisoned, pickled = hostile
    truncated.write_bytes(truncated.read_bytes()[:100])
    np.save(as_int, np.load(as_int).view(np.int32))  # same bytes, wrong dtype
    np.save(transposed, np.ascontiguousarray(np.load(transposed).T))  # same size, wrong shape
    values = np.load(poisoned)
    values[0, 0] = np.nan  # same shape and dtype: its checksum tells
    np.save(poisoned, values)
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)  # never unpickled
    with caplog.at_level(logging.WARNING, logger="genre_lab.inference.linear_probe"):
        again = run_probe(probe_config(root, uri))
    warnings = [r.getMessage() for r in caplog.records if r.name == "genre_lab.inference.linear_probe"]
    assert again.computed == len(hostile) and again.cached == TRACKS - len(hostile)
    assert len(warnings) == len(hostile) and all("embedding again" in w and "\n" not in w for w in warnings)
    assert {p for p in hostile if any(str(p) in w for w in warnings)} == set(hostile)
    assert again.metrics["test/track_acc"] == pytest.approx(first.metrics["test/track_acc"], abs=1e-6)
    assert run_probe(probe_config(root, uri)).computed == 0  # the entries were replaced


def test_folds_of_a_folder_reuse_the_same_audio_embeddings(first, store: tuple[Path, str], tmp_path: Path) -> None:
    """The synthetic training clips written as float WAV files: the same samples, so the same
    cache entries; 3 folds, every track tested once."""
    root, uri = store
    waves, labels, ids = synthetic_split("train", CLIPS["train"], 3.5, RATE, 0, "hard")
    for wave, label, clip in zip(waves, labels, ids):
        folder = tmp_path / "music" / GENRES[label]
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / f"{Path(clip).name}.wav", wave, RATE, subtype="FLOAT")
    code = genre_lab_main(["probe", MODEL, "data=folder", f"data.root={tmp_path / 'music'}", "data.folds=3",
                           f"data.cache_dir={tmp_path / 'audio'}", f"paths.root_dir={root}", f"probe.C_grid={GRID}",
                           "probe.layer=penultimate", "--tracking-uri", uri])
    assert code == 0
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("genre_lab")
    (run,) = [r for r in client.search_runs([exp.experiment_id]) if r.data.params.get("folds") == "3"]
    m = run.data.metrics
    assert m["embed/computed_tracks"] == 0 and m["embed/cached_tracks"] == 3 * len(waves)
    folds = [m[f"fold{k}/test/track_acc"] for k in range(3)]
    assert m["test/track_acc_mean"] == pytest.approx(np.mean(folds))
    assert m["test/track_acc_std"] == pytest.approx(np.std(folds, ddof=1))
    assert 0.0 <= m["test/track_acc"] <= 1.0 and "test/track_ece" in m
    names = {a.path for a in client.list_artifacts(run.info.run_id, "probe")}
    assert {f"probe/probe_fold{k}.safetensors" for k in range(3)} <= names


#: Fewer, shorter clips for the probes of every layer: 40 tracks of one window each.
SMALL = ["data=synthetic", "data.source.difficulty=hard", "data.source.clip_seconds=2.976",
         "data.source.clips_per_class={train: 2, val: 1, test: 1}"]


@pytest.mark.slow
def test_probe_of_every_layer_caches_each_and_auto_is_the_measured_best(tmp_path: Path) -> None:
    """Each layer probed once (its own cache entries: the key holds the layer), its width in the
    probe file; then `auto` (the default) probes the table's layer from the cache."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    dims = {"frontend": 1122, "midend": 1506, "penultimate": 200, "taggram": 50}
    tracks = len(GENRES) * 4
    for i, (layer, dim) in enumerate(dims.items()):
        result = run_probe(probe_config(tmp_path, uri, f"probe.layer={layer}", data=SMALL))
        assert result.computed == tracks and result.tags["probe_layer"] == layer
        assert result.folds[0].head.layer == layer and result.folds[0].head.coef.shape == (10, 3 * dim)
        assert 0.0 <= result.metrics["test/track_acc"] <= 1.0
        assert len(entries(tmp_path)) == (i + 1) * tracks
    cfg = compose([*SMALL, f"paths.root_dir={tmp_path}", f"tracking_uri={uri}", f"probe.C_grid={GRID}"],
                  config_name="probe")
    assert cfg.probe.layer == "auto"
    cfg.embedding_model = MODEL
    auto = run_probe(cfg)
    assert auto.computed == 0 and auto.tags["probe_layer"] == BEST_LAYERS[MODEL]
    params = MlflowClient(uri).get_run(auto.run_id).data.params
    assert params["probe.layer"] == BEST_LAYERS[MODEL] and params["probe.layer_setting"] == "auto"
    # Read back, the probe file names the layer it was fitted on.
    with safe_open(MlflowClient(uri).download_artifacts(auto.run_id, "probe/probe.safetensors", str(tmp_path)),
                   framework="numpy") as f:
        assert f.metadata()["layer"] == BEST_LAYERS[MODEL]


def test_an_unknown_layer_is_refused_by_the_command_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = genre_lab_main(["probe", MODEL, *SMALL, "probe.layer=../../logits", f"paths.root_dir={tmp_path}",
                           "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert " ".join(err.split()) == ("error: probe.layer='../../logits' is not a layer; "
                                     "choose from auto, frontend, midend, penultimate, taggram")
    assert not entries(tmp_path)  # refused before anything was embedded


def test_midend_layer_of_musicnn_and_its_refusal_elsewhere(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    network = load_model(MODEL).network
    embedder = WindowEmbedder(network, "midend", 47616, 47616)
    wave = synthetic_split("test", 1, 3.5, RATE, 0, "hard")[0][0]
    got = embedder(wave)
    assert got.shape == (2, 1506) and got.dtype == np.float32
    with torch.inference_mode():
        x = network.frontend(torch.as_tensor(wave[:47616])[None])
        found = network.eval().backbone.features(x)
    assert np.allclose(got[0], torch.cat([found["mean_pool"], found["max_pool"]], 1)[0].numpy(), atol=1e-3)
    # A CNN has no mid-end to probe: one line naming the setting, exit 2.
    model = GenreClassifier.from_config(compose([*TINY, "model=cnn"]), ["a", "b"])
    ckpt = tmp_path / "cnn.ckpt"
    checkpoint.write(ckpt, model.spec, model.state_dict())
    code = genre_lab_main(["probe", str(ckpt), *DATA, "probe.layer=midend", f"paths.root_dir={tmp_path}",
                           "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"])
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if "error:" in line]
    assert code == 2 and "Traceback" not in err
    assert line == "error: probe.layer='midend' is not a layer of model 'cnn'; choose from auto, penultimate, taggram"


@pytest.mark.gpu
def test_embeddings_on_cuda_match_the_cpu() -> None:
    network = load_model(MODEL).network
    wave = synthetic_split("test", 1, 3.5, RATE, 0, "hard")[0][0]
    on_cpu = WindowEmbedder(network, "penultimate", 47616, 47616, device="cpu")(wave)
    on_cuda = WindowEmbedder(network, "penultimate", 47616, 47616, device="cuda")(wave)
    assert on_cuda.shape == on_cpu.shape == (2, 200)
    assert np.allclose(on_cuda, on_cpu, atol=1e-3)


def test_pooling_written_with_bare_commas_is_a_list() -> None:
    from genre_lab.cli.probe import list_override

    assert list_override("probe.pooling=mean,std,max") == "probe.pooling=[mean,std,max]"
    assert list_override("probe.pooling=[max]") == "probe.pooling=[max]"
    assert list_override("data.source.clips_per_class={a: 1, b: 2}") == "data.source.clips_per_class={a: 1, b: 2}"
    cfg = compose([list_override("probe.pooling=std,mean")], config_name="probe")
    assert check_pooling(cfg.probe.pooling) == ("std", "mean")
    with pytest.raises(ValueError, match="probe.pooling"):
        check_pooling(["mean", "mean"])


@pytest.mark.slow
def test_probe_of_a_training_run_uses_its_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MODEL a run id and no data=: the run's own dataset (its config.yaml), the run's experiment,
    the probe linked to the run; a tiny CNN's embedding separates the easy genres."""
    trained, uri = train_in_own_store(tmp_path, ["model=cnn", "trainer.max_epochs=2", "throughput_seconds=0"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    cfg = compose([f"paths.root_dir={tmp_path}", f"tracking_uri={uri}"], config_name="probe")
    cfg.embedding_model = trained.run_id
    result = run_probe(cfg)
    run = MlflowClient(uri).get_run(result.run_id)
    assert run.data.tags["probed_run_id"] == trained.run_id and run.data.tags["dataset"] == "synthetic"
    assert run.info.experiment_id == MlflowClient(uri).get_run(trained.run_id).info.experiment_id
    assert result.computed == len(GENRES) * (12 + 4 + 4)
    assert result.metrics["test/track_acc"] >= 0.5, result.metrics


def test_a_cached_clip_deleted_mid_run_stops_the_probe_in_one_line_naming_it(tmp_path: Path) -> None:
    """The decode cache hands the probe references, read when embedded: an entry deleted since
    the scan is refused by name, not a traceback."""
    from genre_lab.data import AudioSplit
    from genre_lab.data.cache import AudioCache, CachedWave
    from genre_lab.inference.linear_probe import EmbeddedSplits, ProbeError, _embed_split

    song = tmp_path / "song.wav"
    sf.write(song, np.zeros(1600, dtype=np.float32), 16000)
    cache = AudioCache(tmp_path / "cache", 16000)
    key = cache.key(song, song.stat())
    cache.write(key, np.linspace(-0.5, 0.5, 1600, dtype=np.float32))
    wave, _ = cache.read_checked(key)
    assert isinstance(wave, CachedWave)
    cache.entry(key).unlink()
    split = AudioSplit(ids=["blues/song.wav"], labels=[0], waves=[wave])
    with pytest.raises(ProbeError, match="'blues/song.wav' could not be read again") as err:
        _embed_split(split, None, None, "digest", 16000, EmbeddedSplits(), lambda: None)
    assert "\n" not in str(err.value)
