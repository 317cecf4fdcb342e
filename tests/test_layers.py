"""Import layers: training and model export never load the serving package."""

from __future__ import annotations

import subprocess
import sys

from genre_lab.config import PROJECT_ROOT


def test_training_and_export_do_not_import_inference() -> None:
    code = ("import sys, genre_lab.training, genre_lab.export, genre_lab.train; "
            "print(sorted(m for m in sys.modules if m.startswith('genre_lab.inference')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout
