"""Small differentiable pieces the zoo's layers are built from (PyTorch, any dtype).

Each is the textbook construction, written out so that the zoo stands on its own and reads
like third-party code: orthogonal matrices by QR, symmetric projectors ``R R^T``, block
convolution of taps-first kernels, the 2-D BCOP kernel, circular cross-correlation, MaxMin
and GroupSort.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "bcop_kernel",
    "block_conv",
    "circular_conv2d",
    "group_sort",
    "max_min",
    "orthogonal",
    "projector",
    "random_tensor",
]


def random_tensor(generator: torch.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    """Standard normal draws times ``scale`` (float64, CPU) from ``generator``."""
    return scale * torch.randn(*shape, generator=generator, dtype=torch.float64)


def orthogonal(a: torch.Tensor) -> torch.Tensor:
    """The ``Q`` of the QR factorization of ``a`` with ``diag(R) > 0``: orthonormal columns."""
    q, r = torch.linalg.qr(a)
    result: torch.Tensor = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    return result


def projector(r_tilde: torch.Tensor) -> torch.Tensor:
    """The symmetric projector ``R R^T`` onto the column space of ``r_tilde`` (``n x k``)."""
    r = orthogonal(r_tilde)
    return r @ r.T


def block_conv(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``[X box Y]_a = sum_b X_b Y_{a-b}`` for taps-first 2-D kernels ``(K1, K2, n, n)``."""
    out = x.new_zeros(
        x.shape[0] + y.shape[0] - 1, x.shape[1] + y.shape[1] - 1, x.shape[2], y.shape[3]
    )
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            for k in range(y.shape[0]):
                for m in range(y.shape[1]):
                    out[i + k, j + m] = out[i + k, j + m] + x[i, j] @ y[k, m]
    return out


def bcop_kernel(
    h: torch.Tensor, rows: list[torch.Tensor], columns: list[torch.Tensor]
) -> torch.Tensor:
    """``H box [P_1, I - P_1] box [Q_1; I - Q_1] box ...``, taps first, ``(K, K, n, n)``."""
    eye = torch.eye(h.shape[0], dtype=h.dtype, device=h.device)
    kernel = h.reshape(1, 1, *h.shape)
    for p, q in zip(rows, columns, strict=True):
        kernel = block_conv(kernel, torch.stack([p, eye - p]).reshape(1, 2, *p.shape))
        kernel = block_conv(kernel, torch.stack([q, eye - q]).reshape(2, 1, *q.shape))
    return kernel


def circular_conv2d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Cross-correlation with a taps-first ``(K1, K2, n_out, n_in)`` kernel, circular padding
    ``(K - 1) // 2`` before and ``K - 1 - (K - 1) // 2`` after each axis."""
    k1, k2 = kernel.shape[:2]
    padded = F.pad(x, ((k2 - 1) // 2, k2 // 2, (k1 - 1) // 2, k1 // 2), mode="circular")
    return F.conv2d(padded, kernel.permute(2, 3, 0, 1))


def max_min(x: torch.Tensor) -> torch.Tensor:
    """``cat(max(a, b), min(a, b))`` of the two halves of the channels (axis 1)."""
    a, b = x.chunk(2, dim=1)
    return torch.cat([torch.maximum(a, b), torch.minimum(a, b)], dim=1)


def group_sort(x: torch.Tensor, group: int) -> torch.Tensor:
    """Sort each group of ``group`` consecutive channels in descending order."""
    shape = x.shape
    grouped = x.reshape(shape[0], shape[1] // group, group, *shape[2:])
    return grouped.sort(dim=2, descending=True).values.reshape(shape)
