"""The singular values of a convolution layer's Jacobian, before and after training.

``gnpcheck spectrum CHECKPOINT --layer N`` takes the layer named ``convN`` of the trained
model and of the same model at initialization (rebuilt from the checkpoint's configuration
and seed), computes every singular value of each layer's Jacobian in float64
(:func:`gnpcheck.certify.operators.jacobian_singular_values`: the circulant spectrum for
circular padding, the dense SVD for zeros) and writes a histogram (PNG), the numbers (NPZ and
CSV). An orthogonal convolution has all of them at 1; a merely 1-Lipschitz one spreads below.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from gnpcheck.certify.lipschitz import chain_layers
from gnpcheck.certify.operators import conv_operator, jacobian_singular_values
from gnpcheck.errors import InvalidArgumentError
from gnpcheck.train.dataset import MNIST_SHAPE
from gnpcheck.train.loop import build_from_config, model_from_checkpoint

__all__ = ["LayerSpectrum", "checkpoint_spectrum", "layer_singular_values", "write_spectrum"]


@dataclass(frozen=True)
class LayerSpectrum:
    """The Jacobian singular values of one convolution before and after training.

    Attributes:
        layer: the layer's name (``"conv1"``) and class.
        method: how the values were computed.
        initial, trained: the singular values, descending.
    """

    layer: str
    method: str
    initial: NDArray[np.float64]
    trained: NDArray[np.float64]

    def summary(self) -> str:
        """Count, range and mean of both spectra, one line each."""
        lines = [f"{self.layer}: {self.method}"]
        for label, values in (("initial", self.initial), ("trained", self.trained)):
            lines.append(
                f"  {label:<8} {values.size} values, min {values.min():.6f}, "
                f"max {values.max():.6f}, mean {values.mean():.6f}"
            )
        return "\n".join(lines)


def layer_singular_values(
    model: nn.Module, index: int, input_shape: tuple[int, int, int] = MNIST_SHAPE
) -> tuple[str, NDArray[np.float64], str]:
    """The Jacobian singular values of the child ``conv{index}`` of a chain.

    Returns:
        The layer's description, the values (descending) and the method.

    Raises:
        InvalidArgumentError: no layer ``conv{index}``.
        gnpcheck.certify.operators.NotMeasurableError: a layer gnpcheck cannot measure.
    """
    target = f"conv{index}"
    names = [name for name, _ in chain_layers(model)]
    if target not in names:
        convs = [name for name in names if name.startswith("conv")]
        raise InvalidArgumentError(
            f"layer={index}, but the model has "
            + (f"convolutions {', '.join(convs)}" if convs else "no convolution layers")
        )
    x = torch.zeros((1, *input_shape))
    model.eval()
    with torch.no_grad():
        for name, layer in chain_layers(model):
            if name == target:
                operator = conv_operator(layer, (int(x.shape[-2]), int(x.shape[-1])))
                values, method = jacobian_singular_values(operator)
                return f"{name} ({type(layer).__name__})", values, method
            x = layer(x)
    raise AssertionError("unreachable: the target layer was listed")  # pragma: no cover


def checkpoint_spectrum(checkpoint: str | Path, index: int) -> LayerSpectrum:
    """Spectra of layer ``conv{index}`` at initialization and in ``checkpoint``.

    Raises:
        gnpcheck.data.DataFileError: an unreadable checkpoint.
        InvalidArgumentError: no such layer.
    """
    config, trained = model_from_checkpoint(checkpoint)
    layer, after, method = layer_singular_values(trained, index)
    _, before, _ = layer_singular_values(build_from_config(config), index)
    return LayerSpectrum(layer, method, before, after)


def write_spectrum(
    spectrum: LayerSpectrum, out_dir: str | Path, stem: str, bins: int = 60
) -> list[Path]:
    """Write ``<stem>.png`` (histogram), ``<stem>.npz`` and ``<stem>.csv``; return the paths."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    png, npz, table = (directory / f"{stem}.{suffix}" for suffix in ("png", "npz", "csv"))
    low = min(spectrum.initial.min(), spectrum.trained.min())
    high = max(spectrum.initial.max(), spectrum.trained.max())
    edges = np.linspace(min(low, 0.0), max(high, 1.0) * 1.02, bins + 1)
    figure, axes = plt.subplots(figsize=(6.4, 4.0))
    axes.hist(spectrum.initial, bins=edges.tolist(), alpha=0.6, label="initialization")
    axes.hist(spectrum.trained, bins=edges.tolist(), alpha=0.6, label="trained")
    axes.set_xlabel("singular value of the layer's Jacobian")
    axes.set_ylabel("count")
    axes.set_title(spectrum.layer)
    axes.legend()
    figure.tight_layout()
    figure.savefig(png, dpi=120)
    plt.close(figure)
    np.savez(npz, initial=spectrum.initial, trained=spectrum.trained, method=spectrum.method)
    with table.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["state", "sigma"])
        writer.writerows(("initial", repr(float(v))) for v in spectrum.initial)
        writer.writerows(("trained", repr(float(v))) for v in spectrum.trained)
    return [png, npz, table]
