"""Activations of the perturbed layer for every image of a comparison set, cached on content.

The cache key covers the image bytes, the image names, the network and its weights, the layer and the
preprocessing, so a changed image or setting can never return stale activations. Files are written to
a temporary name and renamed, so an interrupted run leaves no partial file; a truncated or foreign
file is ignored (with a warning) and recomputed.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np

from .models import Network, preprocess
from .storage import aisviz_home, atomic_write, clear_files

CACHE_VERSION = "1"


def cache_dir() -> Path:
    return aisviz_home() / "features"


def clear_cache() -> int:
    """Delete every cached activation file; returns how many were removed."""
    return clear_files(cache_dir())


def resolve_device(device: str | None = "auto"):
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def cache_key(dataset, net: Network, layer: str) -> str:
    desc = {"v": CACHE_VERSION, "data": dataset.content_hash(), "model": net.name, "weights": net.weights,
            "layer": layer, "size": net.image_size, "mean": net.mean, "std": net.std}
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:32]


def _read_cache(path: Path, names: tuple) -> list | None:
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if tuple(z["names"].tolist()) != tuple(names):
                raise ValueError("image names differ")
            return [z[f"a{i}"] for i in range(len(names))]
    except Exception as exc:  # truncated, foreign or stale file: recompute rather than crash
        warnings.warn(f"ignoring unreadable feature cache {path} ({type(exc).__name__}: {exc}); recomputing")
        return None


def _write_cache(path: Path, names: tuple, acts: list) -> None:
    atomic_write(path, lambda f: np.savez(f, names=np.asarray(names), **{f"a{i}": a for i, a in enumerate(acts)}))


def extract_activations(dataset, net: Network, layer: str, device="auto", batch_size: int = 16,
                        use_cache: bool = True, progress: bool = True) -> list[np.ndarray]:
    """Perturbed-layer activations, one float32 array (C, H, W) per image, in dataset order."""
    import torch

    layer_index = net.index(layer)
    path = cache_dir() / f"{cache_key(dataset, net, layer)}.npz"
    if use_cache:
        cached = _read_cache(path, dataset.image_names)
        if cached is not None:
            return cached
    dev = resolve_device(device)
    net.to(dev)
    images = [dataset.load_image(i) for i in range(dataset.n_images)]
    _check_sizes(dataset, images)
    tensors = [preprocess(net, img) for img in images]
    acts: list = [None] * len(tensors)
    order = sorted(range(len(tensors)), key=lambda i: tuple(tensors[i].shape))  # batch equal shapes together
    batches = []
    for i in order:
        if batches and len(batches[-1]) < batch_size and tensors[batches[-1][0]].shape == tensors[i].shape:
            batches[-1].append(i)
        else:
            batches.append([i])
    from tqdm.auto import tqdm

    with torch.no_grad():
        for idx in tqdm(batches, desc=f"{net.name} {layer}", disable=not progress, unit="batch"):
            out = net.run(torch.cat([tensors[i] for i in idx]).to(dev), 0, layer_index + 1)
            if out.dim() != 4:
                raise ValueError(f"layer {layer!r} of {net.name} outputs shape {tuple(out.shape[1:])}, not feature "
                                 f"maps (channels × height × width); perturb a convolutional layer instead.")
            for j, i in enumerate(idx):
                acts[i] = out[j].float().cpu().numpy()
    if use_cache:
        _write_cache(path, dataset.image_names, acts)
    return acts


MIN_IMAGE_SIDE = 32


def _check_sizes(dataset, images):
    """Tiny images are upscaled to the network's input size, but carry too little detail to mean anything."""
    for name, img in zip(dataset.image_names, images):
        if min(img.size) < MIN_IMAGE_SIDE:
            raise ValueError(
                f"image {name!r} is {img.size[0]}x{img.size[1]} px: too small for the network (aisviz needs at least "
                f"{MIN_IMAGE_SIDE} px on the short side; the network sees it resized to a short side of 224). "
                f"Use the original, larger image.")
