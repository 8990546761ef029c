"""What shapes and trains the model: plain data, importable without TensorFlow (the CLI reads it)."""

import dataclasses
from collections.abc import Mapping
from typing import Any

# mirrored: MirroredStrategy in this process (all local GPUs, else the CPU; with replicas > 1 the
# CPU split into that many logical devices, in a worker subprocess: see models/distributed.py).
# multi_worker: MultiWorkerMirroredStrategy over `workers` processes on this machine.
STRATEGIES = ("mirrored", "multi_worker", "one_device", "default")


@dataclasses.dataclass(frozen=True)
class Hyperparameters:
    """What shapes and trains the model. Travels to the Trainer in its custom_config."""

    # Chosen on the bundled data: a small model, because wider layers or more steps overfit its
    # 10k training rows (the resulting eval figures: benchmarks/README.md, "Model quality").
    train_batch_size: int = 512
    eval_batch_size: int = 1024
    learning_rate: float = 0.002
    hidden_units: tuple[int, ...] = (32, 16)
    embedding_dim: int = 4
    distribution_strategy: str = "mirrored"
    replicas: int = 1  # mirrored only: logical CPU devices (replicas) in one training process
    workers: int = 1  # multi_worker only: worker processes, each one replica; worker 0 is the chief
    mixed_precision: bool = False
    seed: int = 42  # initial weights and shuffle order (threaded CPU kernels still vary results slightly)

    @property
    def replicas_in_sync(self) -> int:
        """How many replicas train the model together (the global batch is split among them)."""
        return self.workers if self.distribution_strategy == "multi_worker" else self.replicas

    @property
    def in_subprocess(self) -> bool:
        """Whether the Trainer trains in worker processes (logical devices need a fresh TF runtime)."""
        return self.distribution_strategy == "multi_worker" or self.replicas > 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "Hyperparameters":
        values = dict(values)
        if "hidden_units" in values:
            values["hidden_units"] = tuple(values["hidden_units"])
        return cls(**values)
