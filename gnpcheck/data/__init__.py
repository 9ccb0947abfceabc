"""Data sets read from local files in their standard formats; nothing is ever downloaded.

Images come back as ``uint8`` arrays ``(N, C, H, W)`` and labels as ``int64`` ``(N,)``;
:func:`to_unit_interval` is the one normalisation gnpcheck applies (pixels / 255, in
``[0, 1]``), so certified L2 radii are in that pixel space (docs, Note [input scaling]).
"""

from gnpcheck.data.cifar import load_cifar10
from gnpcheck.data.errors import DataFileError
from gnpcheck.data.mnist import MNIST_FILES, default_mnist_dir, load_mnist, read_idx, write_idx
from gnpcheck.data.normalization import radius_in_pixel_space, to_unit_interval

__all__ = [
    "MNIST_FILES",
    "DataFileError",
    "default_mnist_dir",
    "load_cifar10",
    "load_mnist",
    "radius_in_pixel_space",
    "read_idx",
    "to_unit_interval",
    "write_idx",
]
