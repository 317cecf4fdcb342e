import pytest
import torch

from genre_lab.config import compose
from genre_lab.training.lightning_module import GenreClassifier, track_probabilities
from genre_lab.registry import check_targets


def test_track_probabilities_average_unequal_windows_and_sparse_ids() -> None:
    probs = torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8], [0.4, 0.6], [1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1, 1, 1, 0])
    clips = torch.tensor([7, 7, 3, 3, 3, 12])  # clip 3 has three windows, 7 two, 12 one
    track, track_labels = track_probabilities(probs, labels, clips)
    expected = torch.tensor([[(0.2 + 0.4 + 1.0) / 3, (0.8 + 0.6 + 0.0) / 3], [0.7, 0.3], [0.0, 1.0]])
    assert torch.allclose(track, expected)
    assert track_labels.tolist() == [1, 0, 0]


def test_checkpoint_configs_cannot_instantiate_arbitrary_callables() -> None:
    cfg = compose(["model=cnn"])
    check_targets(cfg.features, cfg.model)  # the shipped configs pass
    cfg.model.backbone._target_ = "builtins.print"
    with pytest.raises(ValueError, match=r"backbone._target_='builtins.print' is not allowed"):
        GenreClassifier.from_config(cfg, ["a", "b"])
    with pytest.raises(ValueError, match="os.system"):
        check_targets({"x": [{"_target_": "os.system"}]})
