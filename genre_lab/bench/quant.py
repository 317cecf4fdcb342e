"""int8 dynamic quantization of the GRU and Linear layers: accuracy kept and speed gained.

The default CRNN is trained briefly on the synthetic genres, then the same test split is scored
by the float32 model and its int8 copy (`torch.ao.quantization.quantize_dynamic`: int8 weights,
activations quantized on the fly; convolutions and the front end stay float32), and both tag
the test clips' windows for speed, in this process, one thread per core as torch sets it.
"""

from __future__ import annotations

import copy
import tempfile
import time
from collections.abc import Sequence

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate

from genre_lab.config import compose
from genre_lab.training.fit import build
from genre_lab.bench.common import Result


def quantize(model: torch.nn.Module) -> torch.nn.Module:
    from torch.ao.quantization import quantize_dynamic

    return quantize_dynamic(copy.deepcopy(model), {torch.nn.GRU, torch.nn.Linear}, dtype=torch.qint8)


def run(overrides: Sequence[str] = (), epochs: int = 4) -> list[Result]:
    with tempfile.TemporaryDirectory() as out:
        cfg = compose(["model=crnn", f"trainer.max_epochs={epochs}", "callbacks.early_stopping=null",
                       "callbacks.progress_bar=null", *overrides], output_dir=out)
        datamodule, model = build(cfg)
        trainer: pl.Trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False,
                                          enable_progress_bar=False, callbacks=[])
        trainer.fit(model, datamodule=datamodule)
        model = model.cpu().eval()
        scores = {}
        for name, m in (("float32", model), ("int8", quantize(model))):
            tester = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                                enable_model_summary=False)
            (metrics,) = tester.test(m, datamodule=datamodule, verbose=False)
            scores[name] = {k: float(v) for k, v in metrics.items() if k.startswith("test/")}
        windows = torch.randn(64, int(cfg.data.chunk_seconds * cfg.data.sample_rate)) * 0.1
        rates = {}
        for name, m in (("float32", model), ("int8", quantize(model))):
            with torch.inference_mode():
                m(windows[:16])
                t0 = time.perf_counter()
                for part in windows.split(16):
                    m(part)
                rates[name] = len(windows) * cfg.data.chunk_seconds / (time.perf_counter() - t0)
    acc = {name: s.get("test/track_acc", s.get("test/acc", float("nan"))) for name, s in scores.items()}
    return [
        Result("crnn_float32", rates["float32"], "window audio s/s", extra={"test_track_acc": acc["float32"]}),
        Result("crnn_int8", rates["int8"], "window audio s/s", "crnn_float32",
               extra={"test_track_acc": acc["int8"], "acc_change": acc["int8"] - acc["float32"]}),
    ]
