"""Training of Lipschitz-constrained networks on MNIST (docs/training.rst).

- :mod:`~gnpcheck.train.config`: :class:`TrainConfig`, TOML and command-line settings;
- :mod:`~gnpcheck.train.loop`: :func:`train`, :func:`resume`, evaluation, checkpoints;
- :mod:`~gnpcheck.train.distributed`: data-parallel training under ``torchrun``;
- :mod:`~gnpcheck.train.spectrum`: Jacobian singular values of a trained convolution;
- :mod:`~gnpcheck.train.checkpoint`: atomic writes, ``weights_only`` reads.
"""

from gnpcheck.train.checkpoint import load_checkpoint, save_checkpoint
from gnpcheck.train.config import TrainConfig, config_from_dict, load_config
from gnpcheck.train.loop import TrainResult, evaluate, model_from_checkpoint, resume, train

__all__ = [
    "TrainConfig",
    "TrainResult",
    "config_from_dict",
    "evaluate",
    "load_checkpoint",
    "load_config",
    "model_from_checkpoint",
    "resume",
    "save_checkpoint",
    "train",
]
