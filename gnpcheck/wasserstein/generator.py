r"""A small MNIST generator and the ordinary convolutional critic that trains it (WGAN-GP).

**Generator** (DCGAN-like, no batch normalization, so a sample does not depend on the batch
it is drawn in): a latent vector :math:`z \sim N(0, I_{d})` goes through a linear layer to
``2 * width`` channels of :math:`7 \times 7`, ReLU, a transposed convolution
(:math:`4 \times 4`, stride 2) to ``width`` channels of :math:`14 \times 14`, ReLU, and a
transposed convolution to one :math:`28 \times 28` channel, then a sigmoid: pixels in
:math:`(0, 1)`, the space :func:`gnpcheck.data.to_unit_interval` gives MNIST in.

**WGAN-GP critic** (Gulrajani et al. 2017): two strided :math:`4 \times 4` convolutions
(``width`` and ``2 * width`` channels) with leaky ReLU (slope 0.2), then a linear layer to
one output. It is an ordinary network, kept near 1-Lipschitz only by the gradient penalty
(:mod:`gnpcheck.wasserstein.gan`); gnpcheck's constrained critics
(:func:`gnpcheck.wasserstein.build_critic`) are what *measure* the distance afterwards.
"""

from __future__ import annotations

import torch
from torch import nn

from gnpcheck.errors import InvalidArgumentError

__all__ = ["IMAGE_SHAPE", "Generator", "wgan_critic"]

#: The shape of one generated image: (channels, height, width).
IMAGE_SHAPE = (1, 28, 28)

#: Samples are drawn in chunks of this many, so that memory stays bounded for any ``n``.
_SAMPLE_CHUNK = 1000


def _check_size(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"{name}={value!r}, but it must be an int >= 1")


class Generator(nn.Module):
    """Latent vectors ``(N, latent_dim)`` to images ``(N, 1, 28, 28)`` with pixels in (0, 1).

    Args:
        latent_dim: size of the latent vector (default 64).
        width: channels of the last hidden layer; the first has ``2 * width`` (default 32).

    Raises:
        InvalidArgumentError: ``latent_dim`` or ``width`` is not an int >= 1.
    """

    def __init__(self, latent_dim: int = 64, width: int = 32) -> None:
        super().__init__()
        _check_size(latent_dim, "latent_dim")
        _check_size(width, "width")
        self.latent_dim = latent_dim
        self.width = width
        self.project = nn.Linear(latent_dim, 2 * width * 7 * 7)
        self.upsample = nn.Sequential(
            nn.ReLU(),
            nn.Unflatten(1, (2 * width, 7, 7)),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(width, 1, 4, stride=2, padding=1),
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Images ``(N, 1, 28, 28)`` for latent vectors ``z`` of shape ``(N, latent_dim)``."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise InvalidArgumentError(
                f"z has shape {tuple(z.shape)}, but it must be (N, {self.latent_dim})"
            )
        images: torch.Tensor = self.upsample(self.project(z))
        return images

    def latent(self, n: int, seed: int) -> torch.Tensor:
        """``n`` latent vectors drawn from :math:`N(0, I)` by a generator seeded with ``seed``."""
        _check_size(n, "n")
        generator = torch.Generator().manual_seed(seed)
        return torch.randn((n, self.latent_dim), generator=generator)

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` images ``(n, 1, 28, 28)`` in ``[0, 1]`` (float32, CPU), a function of ``seed``.

        The global random state is untouched, and so is the training flag (the network has
        no layer that behaves differently in training).

        Raises:
            InvalidArgumentError: ``n`` is not an int >= 1.
        """
        z = self.latent(n, seed)
        device = next(self.parameters()).device
        chunks = [
            self(z[start : start + _SAMPLE_CHUNK].to(device)).float().cpu()
            for start in range(0, n, _SAMPLE_CHUNK)
        ]
        return torch.cat(chunks)


def wgan_critic(width: int = 32) -> nn.Sequential:
    """The WGAN-GP critic: images ``(N, 1, 28, 28)`` to scores ``(N, 1)``.

    Raises:
        InvalidArgumentError: ``width`` is not an int >= 1.
    """
    _check_size(width, "width")
    return nn.Sequential(
        nn.Conv2d(1, width, 4, stride=2, padding=1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.Linear(2 * width * 7 * 7, 1),
    )
