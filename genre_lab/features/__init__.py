"""Front ends (`conf/features/`): audio -> features inside the model, plus augmentation."""

from .augment import SpecAugment, mixup
from .frontend import AUTO_BACKEND, BACKENDS, KINDS, FrontEnd
from .musicnn import MusicnnFrontEnd

__all__ = ["AUTO_BACKEND", "BACKENDS", "KINDS", "FrontEnd", "MusicnnFrontEnd", "SpecAugment", "mixup"]
from .throughput import frontend_throughput  # noqa: E402

__all__ += ["frontend_throughput"]
