import pytest
import torch

from genre_lab.models import CNN, CRNN, RNN


@pytest.mark.parametrize("cls", [CNN, RNN, CRNN])
@pytest.mark.parametrize("bins", [20, 64, 84])
@pytest.mark.parametrize("frames", [16, 94, 301])
def test_backbone_output_shape(cls, bins: int, frames: int) -> None:
    model = cls(bins).eval()
    out = model(torch.randn(2, 1, bins, frames))
    assert out.shape == (2, model.out_dim)


def test_lstm_cell_and_bad_cell() -> None:
    assert RNN(64, cell="lstm")(torch.randn(2, 1, 64, 30)).shape[0] == 2
    with pytest.raises(ValueError, match="model.backbone.cell"):
        RNN(64, cell="transformer")
