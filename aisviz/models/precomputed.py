"""Networks over activations computed elsewhere (thingsvision, your own hooks): a pooled read-out of them."""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from aisviz.errors import DataError
from aisviz.models.networks import Network


def activations_network(activations: Any, name: str = "precomputed") -> Network:
    """A Network that hands out activations computed elsewhere (e.g. thingsvision) and reads them out
    by a global average pool: each map becomes one read-out dimension (its mean), so the fast pooled
    engine scores it. activations: (n_images, C, H, W) or (n_images, C) numpy array or torch tensor, or a
    list of (C, H, W) arrays, in the data set's image order. Pass it as fit(dataset, network=...)."""
    import torch
    from torch import nn


    if isinstance(activations, torch.Tensor):
        activations = activations.detach().cpu().numpy()
    items = list(activations) if isinstance(activations, (list, tuple)) else None
    if items is None:
        arr = np.asarray(activations)
        if arr.ndim == 2:
            arr = arr[:, :, None, None]
        if arr.ndim != 4:
            raise DataError(f"precomputed activations have shape {arr.shape}; give (n_images, channels, height, "
                            "width) feature maps, or (n_images, channels) already pooled.")
        items = list(arr)
    acts = []
    for i, a in enumerate(items):
        a = np.asarray(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a, dtype=np.float32)
        if a.ndim != 3 or a.shape[0] != np.asarray(items[0]).shape[0]:
            raise DataError(f"precomputed activation {i} has shape {a.shape}; every image needs (channels, height, "
                            f"width) with the same number of channels as image 0.")
        if not np.isfinite(a).all():
            raise DataError(f"precomputed activation {i} holds NaN or infinite values; recompute it.")
        acts.append(np.ascontiguousarray(a))
    digest = hashlib.sha256()
    for a in acts:
        digest.update(a.tobytes())
    stages = [("activations", nn.Identity()), ("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten(1))]
    return Network(name=name, weights=f"precomputed:{digest.hexdigest()[:16]}", stages=stages, mean=(0, 0, 0),
                   std=(1, 1, 1), default_layer="activations", default_readout="flatten", precomputed=acts)
