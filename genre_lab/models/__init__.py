"""Backbones (`conf/model/`): plain nn.Modules mapping features to an embedding.

Each takes (batch, 1, bins, frames) and returns (batch, out_dim); the classifier head,
loss and optimiser live in `genre_lab.training.lightning_module.GenreClassifier`.
"""

from genre_lab.models.cnn import CNN
from genre_lab.models.crnn import CRNN
from genre_lab.models.fcn import FCN
from genre_lab.models.harmoniccnn import HarmonicCNN
from genre_lab.models.musicnn import MusiCNN
from genre_lab.models.rnn import RNN
from genre_lab.models.samplecnn import SampleCNN
from genre_lab.models.shortchunk import ShortChunkCNN, ShortChunkResCNN
from genre_lab.models.transformers import CNNSA, SpectrogramTransformer

__all__ = ["CNN", "CNNSA", "CRNN", "FCN", "HarmonicCNN", "MusiCNN", "RNN", "SampleCNN", "ShortChunkCNN", "ShortChunkResCNN",
           "SpectrogramTransformer"]
