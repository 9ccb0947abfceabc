"""A trained network as a file that runs without gnpcheck (``gnpcheck export``).

:func:`deploy` replaces the network's layers by their checked plain exports
(:func:`gnpcheck.nn.export_model`), traces the plain copy with ``torch.export`` (the batch
size left free: any batch of the example's other dimensions), saves the program with
``torch.export.save``, loads it back and compares its outputs on the example with the
network's. ``torch.export.load(path).module()`` then runs it with PyTorch alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.nn.model_export import export_model

__all__ = ["Deployment", "deploy"]


@dataclass(frozen=True)
class Deployment:
    """Where the program was written, the layers replaced in it, and the largest absolute
    difference between the reloaded program's outputs and the network's on the example."""

    path: Path
    replaced: tuple[str, ...]
    max_difference: float

    def to_text(self) -> str:
        """Three lines: the layers replaced, the file, the largest difference."""
        return (
            f"replaced by their plain exports, each checked: {', '.join(self.replaced)}\n"
            f"wrote {self.path} (torch.export program, any batch size)\n"
            f"largest difference to the network on the example: {self.max_difference:.3g}"
        )


def deploy(model: nn.Module, example: torch.Tensor, path: str | Path) -> Deployment:
    """Write ``model`` (evaluation mode) as a ``torch.export`` program to ``path``.

    Raises:
        InvalidArgumentError: an example batch of fewer than 2 inputs (``torch.export``
            would fix the batch size at 1).
        InvalidTypeError, ExportMismatchError: from :func:`~gnpcheck.nn.export_model`,
            which also raises InvalidArgumentError.
    """
    if isinstance(example, torch.Tensor) and example.shape[:1] in ((), (0,), (1,)):
        raise InvalidArgumentError(
            f"example has shape {tuple(example.shape)}, but it must be a batch of at least 2 "
            "inputs: traced on one, the program would take batches of 1 only"
        )
    exported = export_model(model, example)
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(exported.module, (example,), dynamic_shapes=({0: batch},))
    target = Path(path)
    torch.export.save(program, target)
    reloaded = torch.export.load(target).module()
    with torch.no_grad():
        difference = float((reloaded(example) - exported.outputs).abs().max())
    return Deployment(target, exported.replaced, difference)
