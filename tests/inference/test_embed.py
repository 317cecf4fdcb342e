"""`genre-lab embed`: pooled and per-window embeddings of real files in several formats, from
the pretrained musicnn port and from a genre_lab checkpoint; bad files listed, not fatal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genre_lab.models import model_file as checkpoint
from genre_lab.config import compose
from genre_lab.data.synthetic import render_clip
from genre_lab.cli.embed import main as embed_main
from genre_lab.training.lightning_module import GenreClassifier
from tests.conftest import TINY


@pytest.fixture()
def songs(tmp_path: Path) -> Path:
    folder = tmp_path / "songs"
    folder.mkdir()
    # The same rock clip as lossless WAV and FLAC, the same jazz clip as lossy Ogg and MP3.
    for name, genre, seed in (("rock.wav", "rock", 1), ("rock.flac", "rock", 1), ("jazz.ogg", "jazz", 2),
                              ("jazz.mp3", "jazz", 2)):
        sf.write(folder / name, render_clip(genre, seed, 7.0, 22050), 22050)
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio")
    return folder


def _rows(data: np.lib.npyio.NpzFile) -> dict[str, np.ndarray]:
    return {Path(p).name: e for p, e in zip(data["paths"], data["embeddings"])}


def test_pretrained_musicnn_embeddings_of_several_formats(songs: Path, tmp_path: Path) -> None:
    out = tmp_path / "emb.npz"
    assert embed_main(["pretrained:musicnn-msd", str(songs), "--output", str(out), "--per-window",
                       "--layer", "penultimate"]) == 1
    data = np.load(out)
    assert str(data["layer"]) == "penultimate"
    rows = _rows(data)
    assert sorted(rows) == ["jazz.mp3", "jazz.ogg", "rock.flac", "rock.wav"]
    assert data["embeddings"].shape == (4, 200) and np.isfinite(data["embeddings"]).all()
    assert [Path(p).name for p in data["failed"]] == ["broken.wav"] and "data" in data["reasons"][0]
    # Lossless copies embed alike (libsndfile scales 16-bit FLAC and WAV samples a hair apart),
    # lossy ones nearly; different genres clearly differ.
    assert np.allclose(rows["rock.wav"], rows["rock.flac"], atol=2e-3)
    same = np.corrcoef(rows["jazz.ogg"], rows["jazz.mp3"])[0, 1]
    other = np.corrcoef(rows["jazz.ogg"], rows["rock.wav"])[0, 1]
    assert same > 0.98 and other < same - 0.2, (same, other)
    # Per window: every file's windows, pooled by their mean.
    for i in range(4):
        mine = data["window_embeddings"][data["window_file"] == i]
        assert len(mine) >= 2 and np.allclose(mine.mean(0), data["embeddings"][i], atol=1e-5)


def test_checkpoint_embeddings_are_the_backbone_output(songs: Path, tmp_path: Path) -> None:
    model = GenreClassifier.from_config(compose([*TINY, "model=cnn"]), ["a", "b"])
    ckpt = tmp_path / "cnn.ckpt"
    checkpoint.write(ckpt, model.spec, model.state_dict())
    out = tmp_path / "cnn.npz"
    assert embed_main([str(ckpt), str(songs / "rock.wav"), "--output", str(out)]) == 0
    data = np.load(out)
    # auto: a model that is not a pretrained reference embeds at its penultimate layer.
    assert data["embeddings"].shape == (1, model.backbone.out_dim) and str(data["layer"]) == "penultimate"
    # The model may also be named `run=<model>`, as in every command that takes one.
    named = tmp_path / "named.npz"
    assert embed_main([str(songs / "rock.wav"), f"run={ckpt}", "--output", str(named)]) == 0
    assert np.array_equal(np.load(named)["embeddings"], data["embeddings"])
    assert embed_main(["pretrained:nope", str(songs), "--output", str(out)]) == 2
    assert embed_main([str(ckpt), str(songs), "--output", str(out), "--hop", "0"]) == 2


def test_layers_of_pretrained_musicnn_and_auto(songs: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`--layer` takes probe.layer's names; left out (`auto`), the pretrained model's measured-best
    layer; the taggram is its 50 tag probabilities; a layer it lacks is one line, exit 2."""
    from genre_lab.models.embedding_layers import BEST_LAYERS

    song = str(songs / "rock.wav")
    dims = {"frontend": 1122, "midend": 1506, "taggram": 50}
    for layer, dim in dims.items():
        out = tmp_path / f"{layer}.npz"
        assert embed_main(["pretrained:musicnn-msd", song, "--output", str(out), "--layer", layer]) == 0
        data = np.load(out)
        assert data["embeddings"].shape == (1, dim) and str(data["layer"]) == layer
    taggram = np.load(tmp_path / "taggram.npz")["embeddings"]
    assert ((taggram > 0) & (taggram < 1)).all()
    auto = tmp_path / "auto.npz"
    assert embed_main(["pretrained:musicnn-msd", song, "--output", str(auto)]) == 0
    assert str(np.load(auto)["layer"]) == BEST_LAYERS["pretrained:musicnn-msd"]
    capsys.readouterr()
    assert embed_main(["pretrained:musicnn-msd", song, "--output", str(tmp_path / "x.npz"), "--layer", "tags"]) == 2
    err = capsys.readouterr().err
    assert " ".join(err.split()) == ("error: --layer='tags' is not a layer; "
                                     "choose from auto, frontend, midend, penultimate, taggram")
    assert not (tmp_path / "x.npz").exists()


def test_pretrained_musicnn_tags_songs_like_the_original_recipe(songs: Path, tmp_path: Path, capsys) -> None:
    """`pretrained:musicnn-msd` is a model like any other: predict gives its own 50 tags as
    independent probabilities, close to musicnn's own taggram recipe on the same audio."""
    import json

    from genre_lab.audio.decode import load_audio
    from genre_lab.inference import Tagger
    from genre_lab.models.pretrained import zoo
    from genre_lab.models.pretrained.tagging import taggram, top_tags

    from genre_lab.cli.predict import main as predict_main

    tagger = Tagger.load("pretrained:musicnn-msd")
    assert len(tagger.classes) == 50 and tagger.multilabel
    song = tmp_path / "jazz30.ogg"
    sf.write(song, render_clip("jazz", 2, 30.0, 22050), 22050)
    out = tmp_path / "tags.json"
    assert predict_main(["pretrained:musicnn-msd", str(song), "--format", "json", "--top-k", "3",
                         "--output", str(out), "--no-progress"]) == 0
    (row,) = json.loads(out.read_text())
    frontend, backbone = zoo.build_pretrained("pretrained:musicnn-msd")
    wave = load_audio(song, 16000)
    original = top_tags(taggram(backbone, frontend, wave), backbone.tag_names, k=3)
    # Same tags in the same order; the windows differ by one frame per patch and by the last
    # window (ours is aligned to the song's end, the original drops the remainder: on a 7 s
    # clip that alone moved the top tag by 0.13, on 30 s it is one window in eleven).
    assert [g["label"] for g in row["genres"]] == [name for name, _ in original]
    for got, (_, p) in zip(row["genres"], original):
        assert abs(got["probability"] - p) < 0.05
