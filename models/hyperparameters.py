"""What shapes and trains the model: plain data, importable without TensorFlow (the CLI reads it)."""

import dataclasses
from collections.abc import Mapping
from typing import Any

STRATEGIES = ("mirrored", "one_device", "default")


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
    mixed_precision: bool = False
    seed: int = 42  # initial weights and shuffle order (threaded CPU kernels still vary results slightly)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "Hyperparameters":
        values = dict(values)
        if "hidden_units" in values:
            values["hidden_units"] = tuple(values["hidden_units"])
        return cls(**values)
