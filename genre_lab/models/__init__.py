"""Backbones (`conf/model/`): plain nn.Modules mapping features to an embedding.

Each takes (batch, 1, bins, frames) and returns (batch, out_dim); the classifier head,
loss and optimiser live in `genre_lab.training.lightning_module.GenreClassifier`.
"""

from genre_lab.models.cnn import CNN
from genre_lab.models.crnn import CRNN
from genre_lab.models.musicnn import MusiCNN
from genre_lab.models.rnn import RNN

__all__ = ["CNN", "CRNN", "MusiCNN", "RNN"]
