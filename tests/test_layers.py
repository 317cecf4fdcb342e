"""Import layers: training and model export never load the serving package."""

from __future__ import annotations

import subprocess
import sys

from genre_lab.config import PROJECT_ROOT


def test_training_and_export_do_not_import_inference() -> None:
    code = ("import sys, genre_lab.training.fit, genre_lab.models.mlflow_model, genre_lab.cli.train; "
            "print(sorted(m for m in sys.modules if m.startswith('genre_lab.inference')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout


def test_tagging_a_file_imports_neither_lightning_nor_mlflow(tmp_path) -> None:
    """The predict command's path (model file -> Tagger -> tags) stays light: Lightning and MLflow
    were ~4 s of its start-up (`python -X importtime`)."""
    from genre_lab.models import model_file as checkpoint
    from genre_lab.bench.tag import default_model
    from tests.conftest import write_tone

    model = default_model()
    ckpt = tmp_path / "model.ckpt"
    checkpoint.write(ckpt, model.spec, model.state_dict())
    song = write_tone(tmp_path / "song.wav", seconds=4.0, sr=16000)
    code = ("import sys, genre_lab.cli.predict\n"
            "from genre_lab.inference import Tagger\n"
            f"result = Tagger.load({str(ckpt)!r}).tag({str(song)!r})\n"
            "assert result.ok and result.genres, result\n"
            "heavy = ('lightning', 'mlflow', 'torchmetrics', 'hydra', 'optuna', 'pandas')\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout
