"""Training of Lipschitz-constrained networks: checkpoints (more to come with the models)."""

from gnpcheck.train.checkpoint import load_checkpoint, save_checkpoint

__all__ = ["load_checkpoint", "save_checkpoint"]
