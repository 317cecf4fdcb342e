"""Backbones (`conf/model/`): plain nn.Modules mapping features to an embedding.

Each takes (batch, 1, bins, frames) and returns (batch, out_dim); the classifier head,
loss and optimiser live in `genre_lab.module.GenreClassifier`.
"""

from .cnn import CNN
from .crnn import CRNN
from .musicnn import MusiCNN
from .rnn import RNN

__all__ = ["CNN", "CRNN", "MusiCNN", "RNN"]
