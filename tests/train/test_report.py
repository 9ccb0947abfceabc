"""Clean, PGD-robust and certified accuracy: certified <= PGD-robust <= clean, on a trained net."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from gnpcheck.certify.lipschitz import ModelBound, model_lipschitz
from gnpcheck.certify.report import evaluate_robustness
from gnpcheck.errors import InvalidArgumentError, UnsupportedOperationError
from gnpcheck.train.config import TrainConfig
from gnpcheck.train.dataset import mnist_tensors
from gnpcheck.train.loop import evaluate, train


@pytest.fixture(scope="module")
def trained(tiny_mnist: Path, tmp_path_factory: pytest.TempPathFactory) -> torch.nn.Module:
    config = TrainConfig(
        epochs=3, batch_size=32, lr=0.01, threads=1, data_dir=str(tiny_mnist), progress=False,
    )  # fmt: skip
    return train(config, tmp_path_factory.mktemp("run")).model


@pytest.mark.parametrize("epsilon", [0.3, 1.58, 3.0])
def test_certified_pgd_clean_ordering_holds(
    trained: torch.nn.Module, tiny_mnist: Path, epsilon: float
) -> None:
    images, labels = mnist_tensors("test", tiny_mnist)
    bound = model_lipschitz(trained, (1, 28, 28))
    report = evaluate_robustness(
        trained, images, labels, epsilon, bound, pgd_steps=20, pgd_restarts=2, batch_size=40
    )
    assert report.examples == 64
    assert report.clean > 32  # the network learned something
    assert 0 <= report.certified <= report.pgd <= report.clean
    assert report.violations == 0
    assert report.consistent
    assert report.lipschitz == bound.certified_with
    text = report.to_text()
    assert "certified <= PGD-robust <= clean: holds" in text
    assert report.to_dict()["certified_accuracy"] == pytest.approx(100 * report.certified / 64)


def test_attack_and_certificate_bracket_the_truth(
    trained: torch.nn.Module, tiny_mnist: Path
) -> None:
    """At 1.58 some points are certified and PGD breaks others: both sides bite."""
    images, labels = mnist_tensors("test", tiny_mnist)
    bound = model_lipschitz(trained, (1, 28, 28))
    report = evaluate_robustness(trained, images, labels, 1.58, bound, pgd_steps=30, pgd_restarts=1)
    assert 0 < report.certified <= report.pgd < report.clean


def test_a_wrong_bound_shows_up_as_violations(trained: torch.nn.Module, tiny_mnist: Path) -> None:
    """Pretend the network is 100 times smoother than it is: PGD breaks 'certified' points."""
    images, labels = mnist_tensors("test", tiny_mnist)
    true_bound = model_lipschitz(trained, (1, 28, 28))
    wrong = ModelBound(true_bound.layers, claimed=0.01, measured=0.01)
    report = evaluate_robustness(trained, images, labels, 3.0, wrong, pgd_steps=30, pgd_restarts=1)
    assert report.violations > 0
    assert not report.consistent
    assert "VIOLATED" in report.to_text()


def test_the_callers_model_is_untouched(trained: torch.nn.Module, tiny_mnist: Path) -> None:
    images, labels = mnist_tensors("test", tiny_mnist, examples=8)
    trained.train()
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    bound = model_lipschitz(trained, (1, 28, 28))
    evaluate_robustness(trained, images, labels, 1.0, bound, pgd_steps=3, pgd_restarts=1)
    assert trained.training
    assert all(p.requires_grad for p in trained.parameters())
    assert all(torch.equal(before[k], v) for k, v in trained.state_dict().items())
    trained.eval()


def test_bad_arguments(trained: torch.nn.Module) -> None:
    bound = model_lipschitz(trained, (1, 28, 28))
    with pytest.raises(InvalidArgumentError, match="same positive number of examples"):
        evaluate_robustness(trained, torch.zeros(0, 1, 28, 28), torch.zeros(0), 1.0, bound)
    with pytest.raises(InvalidArgumentError, match=r"epsilon=-1\.0"):
        evaluate_robustness(
            trained, torch.zeros(1, 1, 28, 28), torch.zeros(1, dtype=torch.long), -1.0, bound
        )


def test_certificates_refuse_reduced_precision_arithmetic(
    trained: torch.nn.Module, tiny_mnist: Path, float32_settings: Callable[[str, str], None]
) -> None:
    """A float32 model's measured bound, certificate and training-time certified count are
    refused while its device runs float32 convolutions in reduced precision (on a GPU,
    cuDNN's TF32 default; here oneDNN's setting, which the check reads the same way)."""
    images, labels = mnist_tensors("test", tiny_mnist)
    bound = model_lipschitz(trained, (1, 28, 28))
    float32_settings("mkldnn.conv", "bf16")
    with pytest.raises(UnsupportedOperationError, match=r"a measured Lipschitz bound"):
        model_lipschitz(trained, (1, 28, 28))
    with pytest.raises(UnsupportedOperationError, match=r"mkldnn\.conv\.fp32_precision='bf16'"):
        evaluate_robustness(trained, images[:4], labels[:4], 1.0, bound)
    with pytest.raises(UnsupportedOperationError, match=r"a measured Lipschitz bound"):
        evaluate(trained, images[:4], labels[:4], 1.0)  # through its model_lipschitz


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_certificates_refuse_half_precision(
    trained: torch.nn.Module, tiny_mnist: Path, dtype: torch.dtype
) -> None:
    """A half-precision copy of a trained model gets no measured bound and no certificate
    (its logits are rounded at 1e-3 to 1e-2, far above a margin's resolution)."""
    images, labels = mnist_tensors("test", tiny_mnist)
    bound = model_lipschitz(trained, (1, 28, 28))
    half = copy.deepcopy(trained).to(dtype)
    with pytest.raises(UnsupportedOperationError, match=rf"{dtype} parameters"):
        model_lipschitz(half, (1, 28, 28))
    with pytest.raises(UnsupportedOperationError, match=rf"{dtype} parameters"):
        evaluate_robustness(half, images[:4].to(dtype), labels[:4], 1.0, bound)
    with (
        torch.autocast("cpu", dtype=dtype),
        pytest.raises(UnsupportedOperationError, match=rf"autocast to {dtype}"),
    ):
        evaluate_robustness(trained, images[:4], labels[:4], 1.0, bound)
