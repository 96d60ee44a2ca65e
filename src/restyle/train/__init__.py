"""Training fast models (``restyle train``): a feed-forward network per set of paintings, trained
with restyle's own objective on a folder of photos; and their export to ONNX."""

from restyle.train.events import TrainEvent, TrainFinished, TrainProgress, TrainSample, TrainStarted
from restyle.train.loop import TrainOptions, train

__all__ = ["TrainEvent", "TrainFinished", "TrainOptions", "TrainProgress", "TrainSample", "TrainStarted", "train"]
