"""Settings: one declaration of everything a result depends on, with the paper's defaults."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from aisviz.errors import UsageError

DEFAULT_DATASET = "synthetic"


@dataclass(frozen=True)
class Settings:
    """Everything a result depends on. layer/readout None = the network's defaults; k_step 0 = auto."""

    dataset: str = DEFAULT_DATASET
    model: str = "efficientnet_lite0"
    weights: str = "pretrained"
    layer: str | None = None
    readout: str | None = None
    similarity: str = "pearson"
    measure: str = "pearson"
    n_folds: int = 5
    n_seeds: int = 8
    k_step: int = 0
    n_random: int = 1
    provider: str = "spectral_residual"
    dtype: str = "float32"

    def scorer_key(self) -> tuple:
        return (self.dataset, self.model, self.weights, self.layer, self.readout, self.similarity, self.measure,
                self.dtype)

    def validation_key(self, k_step: int) -> tuple:
        return self.scorer_key() + (self.n_folds, self.n_seeds, k_step, self.n_random)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> Settings:
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise UsageError(f"unknown settings {unknown}: expected only {sorted(cls.__dataclass_fields__)}.")
        return cls(**values)


AUTO_K_POINTS = 128          # auto k step: at most about this many k values on the curve ...


AUTO_K_POINTS_SLOW = 32      # ... and for engines that re-run part of the network per mask


def auto_k_step(n_maps: int, reruns_tail: bool = False) -> int:
    """k step used when the k-step field is 0 (auto). Pooled read-outs (every masked similarity from
    per-map statistics, e.g. EfficientNet-Lite0 _head_act -> flatten): every k up to 256 maps, else about
    AUTO_K_POINTS values (step 10 for 1280 maps). Engines that re-run a layer per mask (VGG-16 conv5_3 ->
    fc7): about AUTO_K_POINTS_SLOW values (step 16 for 512 maps). 1 = every k, as in the paper."""
    if not reruns_tail:
        return 1 if n_maps <= 2 * AUTO_K_POINTS else int(np.ceil(n_maps / AUTO_K_POINTS))
    return max(1, int(np.ceil(n_maps / AUTO_K_POINTS_SLOW)))


# (settings field, menu label), in menu order.
FACETS = (("dataset", "data set"), ("model", "network"), ("weights", "weights"), ("layer", "perturbed layer"),
          ("readout", "read-out layer"), ("provider", "saliency"), ("similarity", "network RSM"),
          ("measure", "alignment"), ("n_folds", "folds"), ("n_seeds", "seeds"), ("k_step", "k step"),
          ("n_random", "random orders"))


def facet_text(field: str, value: object) -> str:
    """A facet value in words (menus and messages)."""
    if value is None:
        return "(network default)"
    if field == "n_seeds" and isinstance(value, int):
        return f"{value} (111 … {111 * value})"
    if field == "k_step" and value == 0:
        return "auto"
    if field == "provider" and value == "":
        return "none"
    return str(value)
