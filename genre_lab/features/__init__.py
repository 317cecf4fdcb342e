"""Front ends (`conf/features/`): audio -> features inside the model, plus augmentation."""

from genre_lab.features.augment import SpecAugment, mixup
from genre_lab.features.frontend import AUTO_BACKEND, BACKENDS, KINDS, FrontEnd
from genre_lab.features.harmonic import HarmonicFilterbank
from genre_lab.features.musicnn_frontend import MusicnnFrontEnd
from genre_lab.features.waveform import Waveform

__all__ = ["AUTO_BACKEND", "BACKENDS", "KINDS", "FrontEnd", "HarmonicFilterbank", "MusicnnFrontEnd", "SpecAugment", "Waveform", "mixup"]
from genre_lab.features.throughput import frontend_throughput  # noqa: E402

__all__ += ["frontend_throughput"]
