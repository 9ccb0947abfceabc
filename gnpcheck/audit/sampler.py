"""The audit's random draws: one seeded CPU generator, never the global random state.

Every draw comes from :class:`Sampler`'s own ``torch.Generator`` (float64 on the CPU, then
converted), so an audit with the same seed draws the same inputs on every machine and device,
and the caller's random state is untouched.
"""

from __future__ import annotations

import torch

__all__ = ["Sampler"]


class Sampler:
    """Seeded draws of inputs and scalars for one input shape, dtype and device."""

    def __init__(
        self, seed: int, input_shape: tuple[int, ...], dtype: torch.dtype, device: torch.device
    ) -> None:
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(seed)
        self.seed = seed
        self.input_shape = input_shape
        self.dtype = dtype
        self.device = device

    def normal(self, *shape: int) -> torch.Tensor:
        """Standard normal draws of any ``shape``, in the audit's dtype and device."""
        draw = torch.randn(*shape, generator=self.generator, dtype=torch.float64)
        return draw.to(device=self.device, dtype=self.dtype)

    def inputs(self, batch: int) -> torch.Tensor:
        """``batch`` standard normal inputs, shape ``(batch, *input_shape)``."""
        return self.normal(batch, *self.input_shape)

    def scalars(self, count: int) -> list[float]:
        """``count`` standard normal numbers."""
        return [float(v) for v in torch.randn(count, generator=self.generator, dtype=torch.float64)]
