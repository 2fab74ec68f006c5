"""Similarity matrices of the read-out under channel masks of the perturbed layer.

Three engines give the same numbers (tests check the fast ones against the brute-force one):

- TailEngine (brute force, the reference): re-run the network from the perturbed layer to the
  read-out on masked activations, as the authors' code does.
- LinearHeadEngine: the tail is channel-wise stages (ReLU, pooling, ...) then Flatten then a Linear
  layer (VGG's conv5_3 -> fc6). Zeroing channel j changes the Linear layer's pre-activation by a fixed
  vector W_j (p_ij - p0_j) per (image, channel), so masks cost one vector sum each (nested top-k
  masks: one running sum) and only the layers after the Linear one (fc7) run per mask.
- PooledEngine: the tail is channel-wise stages only (global average pool, flatten), so each read-out
  dimension block belongs to one channel. Every masked similarity matrix is then a linear function of
  per-channel Gram matrices: thousands of masks cost one matrix product, nested masks a cumulative sum.

Read-outs are computed in the engine's dtype (float32 by default); similarities are float64 and kept
condensed: the upper triangle without the diagonal, in np.triu_indices(n, 1) order ("pairs"). A read-out
with zero variance (e.g. every kept map is silent for that image) has no defined Pearson similarity: its
pairs are NaN, as with np.corrcoef.
"""
from __future__ import annotations

import contextlib
import copy
import ctypes
import functools
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from aisviz.errors import DataError, ModelError, UsageError

SIMILARITIES = ("pearson", "cosine")

# Modules that act on each channel separately (in eval mode, where BatchNorm and Dropout are fixed),
# so zeroing channel j only changes channel j of their output.
_CHANNELWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.SiLU, nn.Hardswish, nn.GELU, nn.Sigmoid, nn.Tanh,
                nn.Hardsigmoid, nn.ELU, nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
                nn.AdaptiveMaxPool2d, nn.Dropout, nn.Identity)


@functools.lru_cache(maxsize=1)
def keep_large_blocks_apart(threshold: int = 6 << 20) -> bool:
    """Make glibc give large freed blocks back to the OS (once per process; True if it applied).

    glibc raises its mmap threshold (up to 32 MiB) whenever a large block is freed, e.g. during feature
    extraction; from then on the chunk temporaries (n x n float64: 32 MB at 2000 images) come from the heap,
    where small long-lived objects pin them, and resident memory grows by megabytes per chunk (measured: about
    +3 MB per map at 2000 images, 6.7 GB instead of under 4). A fixed threshold keeps every block above it in a
    mapping of its own, unmapped when freed. Smaller blocks are unaffected."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(-3, threshold))  # -3: M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return False


class _Float32Convolutions:
    """The process-wide cuDNN TF32 switch, held off while any thread needs full float32: the first to enter
    saves the caller's setting and turns TF32 off, the last to leave restores it (counted under a lock, so
    overlapping threads never turn it back on under each other, nor leave it changed)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved = False

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._users == 0:
                self._saved = torch.backends.cudnn.allow_tf32
                torch.backends.cudnn.allow_tf32 = False
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    torch.backends.cudnn.allow_tf32 = self._saved


# Run cuDNN convolutions in full float32. PyTorch lets them use TF32 by default, whose 10-bit mantissa moves
# activations by about 1e-3 relative: more than many maps' AIS, so GPU rankings would differ from the CPU's, and
# a batch would differ from the same image run alone (the feature cache's check).
full_float32_convolutions = _Float32Convolutions()


class _Tail(nn.Sequential):
    def forward(self, x):
        with full_float32_convolutions():
            return super().forward(x)


def _prepared(stages, device, dtype) -> nn.Sequential:
    """The stages as one module on device/dtype; copied first if that needs a conversion, so the
    network itself is never changed (its modules are shared with the caller)."""
    seq = _Tail(*[m for _, m in stages]).eval()
    tensors = list(seq.parameters()) + list(seq.buffers())
    if any(t.device != device or (t.is_floating_point() and t.dtype != dtype) for t in tensors):
        seq = copy.deepcopy(seq).to(device, dtype)
    return seq


def _check_similarity(similarity):
    if similarity not in SIMILARITIES:
        raise UsageError(f"similarity must be one of {SIMILARITIES}, not {similarity!r}.")


def _unit(r, similarity):
    r = r.double()
    if similarity == "pearson":
        r = r - r.mean(-1, keepdim=True)
    norm = r.norm(dim=-1, keepdim=True)
    return r / torch.where(norm > 0, norm, torch.nan)


def similarity_matrices(readouts: torch.Tensor, similarity: str = "pearson") -> torch.Tensor:
    """(M, n, D) read-outs -> (M, n, n) float64 similarity matrices (np.corrcoef rows, or cosine).

    From the float64 Gram matrix, centred and scaled afterwards (one pass over the read-outs instead of
    four); a read-out without variance (up to the rounding of that centring) has NaN similarities."""
    r = readouts.double()
    gram = r @ r.transpose(-1, -2)
    second_moment = gram.diagonal(dim1=-2, dim2=-1).clone()
    if similarity == "pearson":
        sums = r.sum(-1)
        gram.sub_(sums[..., :, None] * (sums[..., None, :] / r.shape[-1]))
    var = gram.diagonal(dim1=-2, dim2=-1)
    inv = torch.where(var > 1e-12 * second_moment, var.clamp_min(1e-300).rsqrt(), torch.nan)
    return gram.mul_(inv[..., :, None]).mul_(inv[..., None, :])


@functools.lru_cache(maxsize=4)
def upper_positions(n: int, device: torch.device) -> torch.Tensor:
    """Flat positions i * n + k of the pairs i < k, in np.triu_indices(n, 1) order."""
    rows, cols = np.triu_indices(n, 1)
    return torch.as_tensor(rows * n + cols, device=device)


def condense(matrices: torch.Tensor) -> torch.Tensor:
    """(..., n, n) -> (..., P): the upper triangles without diagonal, np.triu_indices(n, 1) order."""
    n = matrices.shape[-1]
    return matrices.flatten(-2).index_select(-1, upper_positions(n, matrices.device))


def cross_similarity(modified: torch.Tensor, original: torch.Tensor, similarity: str = "pearson") -> torch.Tensor:
    """Entry [m, i, k] = similarity of modified[m, i] with original[k]: (M, n, D), (n, D) -> (M, n, n)."""
    return _unit(modified, similarity) @ _unit(original, similarity).T


class TailEngine:
    """Brute force: zero the masked channels and re-run the tail stages for every mask and image."""

    kind = "brute-force re-run"
    reruns_tail = True   # every mask re-runs network layers (slow: callers use coarser k grids)

    def __init__(self, tail_stages, activations, similarity: str = "pearson", device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, chunk_bytes: int = 2 ** 27):
        _check_similarity(similarity)
        self.similarity, self.device, self.dtype = similarity, torch.device(device), dtype
        keep_large_blocks_apart()
        self.chunk_bytes = chunk_bytes
        self.tail = _prepared(tail_stages, self.device, dtype)
        shapes = {tuple(a.shape) for a in activations}
        if len({s[0] for s in shapes}) != 1:
            raise DataError("activations have different channel counts")
        self.n, self.n_maps = len(activations), next(iter(shapes))[0]
        # Images of one shape are run together; most sets have a single shape.
        self.groups = []
        for shape in sorted(shapes):
            idx = [i for i, a in enumerate(activations) if tuple(a.shape) == shape]
            self.groups.append((idx, torch.as_tensor(np.stack([activations[i] for i in idx])).to(self.device, dtype)))
        self.full_readouts = self.readouts(torch.ones(1, self.n_maps))[0]

    def _run_tail(self, x):
        with torch.no_grad():
            return self.tail(x).flatten(1)

    def readouts(self, masks: torch.Tensor) -> torch.Tensor:
        """(M, C) 0/1 masks -> (M, n, D) read-outs with the masked-out channels zeroed."""
        masks = masks.to(self.device, self.dtype)
        out = None
        for idx, acts in self.groups:
            per_mask = acts[0].numel() * len(idx) * acts.element_size() * 4
            step = max(1, self.chunk_bytes // per_mask)
            parts = []
            for s in range(0, len(masks), step):
                m = masks[s:s + step]
                x = (acts[None] * m[:, None, :, None, None]).flatten(0, 1)
                parts.append(self._run_tail(x).view(len(m), len(idx), -1))
            r = torch.cat(parts)
            if out is None:
                out = torch.empty(len(masks), self.n, r.shape[-1], device=self.device, dtype=self.dtype)
            elif r.shape[-1] != out.shape[-1]:
                raise DataError("images of different sizes give read-outs of different lengths; use a read-out "
                                 "after global pooling, or resize the images to one size")
            out[:, idx] = r
        assert out is not None, "there is at least one group of images"
        return out

    # --- the two mask families the method needs -------------------------------------------------------
    def full_rsm(self) -> torch.Tensor:
        """(n, n) similarity matrix with every map kept."""
        return similarity_matrices(self.full_readouts[None], self.similarity)[0]

    def loo(self, js: npt.ArrayLike | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Leave-one-map-out for maps js: (pairs (J, P) with map j zeroed in every image,
        cross (J, n, n): cross[j, i, k] = similarity of image i with map j zeroed to the unmodified image k)."""
        r = self._loo_readouts(torch.as_tensor(js))
        pairs = condense(similarity_matrices(r, self.similarity))
        return pairs, cross_similarity(r, self.full_readouts, self.similarity)

    def loo_pairs(self, js: npt.ArrayLike | torch.Tensor) -> torch.Tensor:
        """(J, P): the pairs of loo(js) alone, without the image-specific rows."""
        return condense(similarity_matrices(self._loo_readouts(torch.as_tensor(js)), self.similarity))

    def _loo_readouts(self, js):
        masks = torch.ones(len(js), self.n_maps)
        masks[torch.arange(len(js)), js] = 0
        return self.readouts(masks)

    def prefix_pairs(self, order: npt.ArrayLike,
                     ks: Sequence[int]) -> Iterator[tuple[list[int], torch.Tensor]]:
        """Yield (ks_chunk, pairs (len(ks_chunk), P)) keeping only the maps order[:k] for each k; ks ascending."""
        order = torch.as_tensor(np.ascontiguousarray(order))
        for chunk in self.chunks(list(ks)):
            masks = torch.zeros(len(chunk), self.n_maps)
            for t, k in enumerate(chunk):
                masks[t, order[:k]] = 1
            yield chunk, condense(similarity_matrices(self.readouts(masks), self.similarity))

    def _bytes_per_mask(self) -> int:
        """Working memory of one mask: masked activations and tail outputs for every image."""
        per_image = max(self.groups[0][1][0].numel(), self.full_readouts.shape[-1])
        return self.n * per_image * self.dtype.itemsize * 4 + self.n * self.n * 8 * 3

    def chunks(self, items: list) -> list[list]:
        """Split masks (or k values) into batches that fit the engine's working-memory budget."""
        step = max(1, self.chunk_bytes // self._bytes_per_mask())
        return [items[s:s + step] for s in range(0, len(items), step)]


class LinearHeadEngine(TailEngine):
    """Tail = channel-wise stages, Flatten, Linear, head stages. See the module docstring."""

    kind = "precomputed per-map Linear contributions"
    reruns_tail = True   # the layers after the first Linear (VGG: fc7) still run once per mask

    def __init__(self, tail_stages, pre_stages, linear, head_stages, activations, **kw):
        super().__init__(tail_stages, activations, **kw)
        self.rows_run = 0                                                # head rows computed (for benchmarks)
        self.pre = _prepared(pre_stages, self.device, self.dtype)
        self.head = _prepared(head_stages, self.device, self.dtype)
        with torch.no_grad():
            pooled = torch.empty(0)
            for idx, acts in self.groups:
                p = self.pre(acts)
                if pooled.numel() == 0:
                    pooled = torch.empty((self.n,) + tuple(p.shape[1:]), device=self.device, dtype=self.dtype)
                pooled[idx] = p
            zero = self.pre(torch.zeros_like(self.groups[0][1][:1]))[0]
        C = self.n_maps
        w = linear.weight.detach().to(self.device, self.dtype)
        if w.shape[1] != pooled[0].numel():
            raise ModelError("Linear layer input size does not match the pooled perturbed layer")
        # Kept by map, so that the contributions of a map (or a few maps) are one contiguous matrix product.
        self.weight_by_map = w.view(w.shape[0], C, -1).permute(1, 2, 0).contiguous()     # (C, s, out)
        self.delta_by_map = (pooled - zero[None]).reshape(self.n, C, -1).transpose(0, 1).contiguous()  # (C, n, s)
        bias = linear.bias.detach().to(self.device, self.dtype) if linear.bias is not None else 0
        weight = self.weight_by_map.flatten(0, 1)                        # (C * s, out)
        self.z_empty = bias + zero.reshape(-1) @ weight                  # every map zeroed
        self.z_full = self.z_empty + self.delta_by_map.transpose(0, 1).flatten(1) @ weight
        # read-outs from the decomposition itself, so that every mask (all maps included) is computed one way
        self.full_readouts = self._head(self.z_full[None].clone())[0]
        # Map j of image i is silent when its pooled map equals that of a zeroed map (after ReLU, often all
        # zeros): removing or adding it leaves that image's read-out exactly as it was, so its rows are skipped.
        self.active = self.delta_by_map.ne(0).any(-1)                    # (C, n)

    def _head(self, z):
        """Run the stages after the Linear layer; they may work in place (ReLU(inplace=True)) on z."""
        with torch.no_grad():
            m, n, d = z.shape
            self.rows_run += m * n
            return self.head(z.reshape(m * n, d)).reshape(m, n, -1)

    def _head_where(self, fresh_z, changed, base, carry_forward: bool):
        """Read-outs (M, n, D) where only the entries changed (M, n) have new pre-activations fresh_z (one row
        each, in changed's row-major order): the head runs on those rows only; an unchanged entry takes
        base[i] (the read-out with nothing changed), or, with carry_forward, the latest changed entry of
        image i before it along M (nested masks: the previous k)."""
        M, n = changed.shape
        fresh = self._head(fresh_z[None])[0]
        source = torch.arange(n, device=self.device).repeat(M)
        source[changed.flatten().nonzero().squeeze(1)] = n + torch.arange(len(fresh), device=self.device)
        source = source.view(M, n)
        if carry_forward:  # fresh rows are numbered in (M, n) order, so the latest one is the largest
            source = torch.cummax(source, 0).values
        return torch.cat([base, fresh]).index_select(0, source.flatten()).view(M, n, -1)

    def contributions(self, js: npt.ArrayLike | torch.Tensor) -> torch.Tensor:
        """(J, n, out): how much keeping map j adds to the Linear pre-activation of each image."""
        js = torch.as_tensor(js, device=self.device)
        return torch.bmm(self.delta_by_map.index_select(0, js), self.weight_by_map.index_select(0, js))

    def _bytes_per_mask(self) -> int:
        return self.n * max(self.z_full.shape[-1], self.full_readouts.shape[-1]) * self.dtype.itemsize * 4 \
            + self.n * self.n * 8 * 3

    def _loo_readouts(self, js):
        js = torch.as_tensor(js, device=self.device)
        changed = self.active[js]
        z = self.z_full[None] - self.contributions(js)
        return self._head_where(z[changed], changed, self.full_readouts, carry_forward=False)

    def prefix_pairs(self, order: npt.ArrayLike,
                     ks: Sequence[int]) -> Iterator[tuple[list[int], torch.Tensor]]:
        # Running sums of the maps' contributions to the Linear pre-activation, a slice of maps at a time (one
        # batched product for the slice, its prefix sums as one product with a triangular matrix); the head then
        # runs only on the (k, image) rows where a map added since the previous k is active.
        order = torch.as_tensor(np.ascontiguousarray(order), device=self.device)
        carry = self.z_empty.expand(self.n, -1).clone()                  # pre-activation with the maps so far
        readouts = self._head(carry[None].clone())[0]                    # every map zeroed
        done = 0
        for chunk in self.chunks(list(ks)):
            stop, step = chunk[-1], len(chunk)
            wanted = torch.as_tensor(chunk, device=self.device) - 1       # positions in order that end a k
            parts = []
            for s in range(done, stop, step):                             # slices of at most len(chunk) maps
                e = min(stop, s + step)
                keep = wanted[(wanted >= s) & (wanted < e)] - s
                triangle = torch.ones(e - s, e - s, device=self.device, dtype=self.dtype).tril_()
                sums = (triangle @ self.contributions(order[s:e]).flatten(1)).view(e - s, self.n, -1).add_(carry)
                parts.append(sums if len(keep) == e - s else sums.index_select(0, keep))
                carry = sums[-1]
            z = parts[0] if len(parts) == 1 else torch.cat(parts)
            bounds = [done] + chunk
            changed = torch.stack([self.active[order[a:b]].any(0) for a, b in zip(bounds[:-1], bounds[1:])])
            done = stop
            r = self._head_where(z.flatten(0, 1).index_select(0, changed.flatten().nonzero().squeeze(1)), changed,
                                 readouts, carry_forward=True)
            readouts = r[-1]
            yield chunk, condense(similarity_matrices(r, self.similarity))


class PooledEngine(TailEngine):
    """Tail = channel-wise stages only; similarities from per-map sufficient statistics.

    With x_i the read-out of image i (one block per map) and z the block a zeroed map becomes, a mask m
    gives x'_i = m*x_i + (1-m)*z blockwise, so dot products, squared norms and element sums of the
    masked read-outs are sums over maps of per-map terms. The per-map squared norms and sums are kept
    ((maps, n) each); the per-map pair dot products, which would be (maps, n^2/2), are formed one chunk of
    maps at a time by batched matrix products, so memory stays O(chunk * n^2).
    """

    kind = "per-map sufficient statistics"
    reruns_tail = False  # every masked similarity is a product of precomputed statistics

    def __init__(self, tail_stages, activations, similarity: str = "pearson", device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, chunk_bytes: int = 2 ** 27):
        _check_similarity(similarity)
        self.similarity, self.device, self.dtype = similarity, torch.device(device), dtype
        keep_large_blocks_apart()
        self.chunk_bytes = chunk_bytes
        self.tail = _prepared(tail_stages, self.device, dtype)
        channels = {a.shape[0] for a in activations}
        if len(channels) != 1:
            raise DataError("activations have different channel counts")
        n, C = self.n, self.n_maps = len(activations), channels.pop()
        self.full_readouts = self._batched_readouts(activations)
        with torch.no_grad():
            zero = self._run_tail(torch.zeros((1,) + activations[0].shape, device=self.device, dtype=dtype))
        x = self.full_readouts.double().view(n, C, -1)                  # (n, C, s): read-out block per map
        zero = zero[0].double().view(C, -1)
        if similarity == "pearson":
            # Pearson r ignores a constant added to a whole read-out, masked or not: centring every value on
            # the overall mean keeps the float32 curves' sums free of cancellation.
            shift = x.mean()
            x, zero = x - shift, zero - shift
        self.x, self.dim = x, x.shape[1] * x.shape[2]
        self.x_by_map = x.transpose(0, 1).contiguous()                   # (C, n, s), for prefix_pairs
        rows, cols = np.triu_indices(n, 1)
        self.rows, self.cols = torch.as_tensor(rows, device=self.device), torch.as_tensor(cols, device=self.device)
        # Effect of keeping map j rather than zeroing it, on each image's squared norm and element sum,
        # and (zero_sq) on every pair's dot product before the map's own products are added.
        self.zero, self.zero_sq = zero, (zero * zero).sum(-1)           # (C, s), (C,)
        self.sq_delta = (x * x).sum(-1).T - self.zero_sq[:, None]       # (C, n)
        self.sum_delta = x.sum(-1).T - zero.sum(-1)[:, None]            # (C, n)
        flat = x.flatten(1)
        self.dots = flat @ flat.T                                        # (n, n) unmodified dot products
        self.full_sq_sums = ((flat * flat).sum(1), flat.sum(1))          # squared norms and sums, (n,) each
        self.base = (self.zero_sq.sum(), self.zero_sq.sum().expand(n), zero.sum().expand(n))  # every map zeroed

    def _batched_readouts(self, activations, batch: int = 32) -> torch.Tensor:
        """(n, D) read-outs with every map kept, a few images at a time (no stacked copy of all activations)."""
        out = None
        for start in range(0, self.n, batch):
            part = activations[start:start + batch]
            by_shape = {}
            for i, a in enumerate(part):
                by_shape.setdefault(a.shape, []).append(start + i)
            for idx in by_shape.values():
                acts = torch.as_tensor(np.stack([activations[i] for i in idx])).to(self.device, self.dtype)
                r = self._run_tail(acts)
                if out is None:
                    out = torch.empty(self.n, r.shape[-1], device=self.device, dtype=self.dtype)
                elif r.shape[-1] != out.shape[-1]:
                    raise DataError("images of different sizes give read-outs of different lengths; use a "
                                     "read-out after global pooling, or resize the images to one size")
                out[idx] = r
        assert out is not None, "the constructor has checked that there is at least one image"
        return out

    def chunks(self, items: list) -> list[list]:
        # Bounded by n^2 (the image rows of loo, the pair products of prefix_pairs), never by maps x n^2.
        # Small chunks keep the temporaries in cache: ~3x faster than one big block on 2 cores.
        step = max(1, min(64, 2 ** 22 // (self.n * self.n * 8)))
        return [items[s:s + step] for s in range(0, len(items), step)]

    def _pairs_from(self, dots, sq, sums):
        """Statistics of M masks (dot products (M, n, n), worked on in place; squared norms and element sums
        (M, n)) -> similarities of the pairs (M, P); NaN where a read-out has no variance. Normalised as
        matrices and condensed once: one gather instead of five over the pairs."""
        D = self.dim
        if self.similarity == "pearson":
            mu = sums / D
            var = sq / D - mu * mu
            dots.sub_(mu[:, :, None] * (D * mu[:, None, :]))              # D * covariance
        else:
            var = sq
        # No variance (up to the rounding of var as a difference of sums): no similarity is defined.
        second_moment = sq / D if self.similarity == "pearson" else sq.amax(-1, keepdim=True)
        tolerance = 1e-5 if dots.dtype == torch.float32 else 1e-12
        sd = torch.where(var > tolerance * second_moment, var.clamp_min(0).sqrt(), torch.nan)
        if self.similarity == "pearson":
            sd = sd * D ** 0.5
        return condense(dots.div_(sd[:, :, None]).div_(sd[:, None, :]))

    def _map_products(self, js):
        """(J, n, n): how much keeping map j (rather than zeroing it) adds to each pair's dot product."""
        xj = self.x[:, js].transpose(0, 1)                               # (J, n, s)
        return (xj @ xj.transpose(1, 2)).sub_(self.zero_sq[js][:, None, None])

    def full_rsm(self) -> torch.Tensor:
        sq, sums = self.full_sq_sums
        full = self._pairs_from(self.dots[None].clone(), sq[None], sums[None])[0]
        matrix = torch.ones(self.n, self.n, dtype=torch.float64, device=self.device)
        matrix[self.rows, self.cols] = full
        matrix[self.cols, self.rows] = full
        return matrix

    def loo_pairs(self, js: npt.ArrayLike | torch.Tensor) -> torch.Tensor:
        js = torch.as_tensor(js, device=self.device)
        sq, sums = self.full_sq_sums
        return self._pairs_from(torch.sub(self.dots[None], self._map_products(js)), sq - self.sq_delta[js],
                                sums - self.sum_delta[js])

    def loo(self, js: npt.ArrayLike | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        js = torch.as_tensor(js, device=self.device)
        pairs = self.loo_pairs(js)
        # Image-specific: only image i loses map j (its block x_ij becomes z_j); image k is unmodified.
        # dot(x'_i, x_k) = dot(x_i, x_k) - (x_ij - z_j).x_kj, a rank-s correction per map, and the Pearson
        # centring term D mu'_i mu_k is one more rank-1 term: both go into a single batched product.
        n, D = self.n, self.dim
        sq_k, sums_k = self.full_sq_sums
        xj = self.x[:, js].transpose(0, 1)                               # (J, n, s)
        dj = xj - self.zero[js][:, None, :]
        sums_i = sums_k[None] - self.sum_delta[js]                       # (J, n) of the modified image i
        sq_i = sq_k[None] - self.sq_delta[js]
        if self.similarity == "pearson":
            left = torch.cat([-dj, -(sums_i / D)[..., None]], -1)          # (J, n, s+1)
            right = torch.cat([xj, sums_k[None, :, None].expand(len(js), n, 1)], -1)
            var_i, var_k = sq_i - sums_i ** 2 / D, sq_k - sums_k ** 2 / D  # D x variance
        else:
            left, right, var_i, var_k = -dj, xj, sq_i, sq_k
        cross = torch.baddbmm(self.dots[None].expand(len(js), n, n), left, right.transpose(1, 2))
        inv_i = torch.where(var_i > 0, var_i.clamp_min(1e-300).rsqrt(), torch.nan)  # no variance: undefined
        inv_k = torch.where(var_k > 0, var_k.clamp_min(1e-300).rsqrt(), torch.nan)
        cross.mul_(inv_i[:, :, None]).mul_(inv_k[None, None, :])
        return pairs, cross

    def prefix_pairs(self, order: npt.ArrayLike,
                     ks: Sequence[int]) -> Iterator[tuple[list[int], torch.Tensor]]:
        # Statistics in float64: the same k gives the same numbers whichever k grid it is part of (float32
        # sums of differently grouped maps differed by 2e-7 in R^2, and failed at small k). The maps added
        # between two consecutive k form one group, whose pair dot products are one matrix product; groups
        # of one size are batched.
        order = torch.as_tensor(np.ascontiguousarray(order), device=self.device)
        dots, sq, sums = self.base
        dots = dots.expand(self.n, self.n)                               # running dot products, as a matrix
        done = 0
        for chunk in self.chunks(list(ks)):
            sizes = np.diff([done] + chunk)
            parts = []
            t = 0
            while t < len(chunk):   # runs of groups of one size
                size, run = sizes[t], 1
                while t + run < len(chunk) and sizes[t + run] == size:
                    run += 1
                groups = order[done:done + size * run].view(run, size)
                xg = self.x_by_map[groups].permute(0, 2, 1, 3).flatten(2)       # (run, n, size*s)
                inc_dots = (xg @ xg.transpose(1, 2)).sub_(self.zero_sq[groups].sum(1)[:, None, None])
                inc_sq = self.sq_delta[groups].sum(1)
                inc_sums = self.sum_delta[groups].sum(1)
                cum = [torch.cumsum(inc, 0) + start[None] for inc, start in ((inc_dots, dots), (inc_sq, sq),
                                                                              (inc_sums, sums))]
                parts.append(cum)
                dots, sq, sums = (c[-1].clone() for c in cum)                # _pairs_from works in place
                done += size * run
                t += run
            yield chunk, self._pairs_from(*(torch.cat([p[i] for p in parts]) for i in range(3)))


def make_engine(net: Any, layer_index: int, readout_index: int, activations: Sequence[np.ndarray],
                similarity: str = "pearson", device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                method: str = "auto") -> TailEngine:
    """The fastest exact engine for this tail; method="brute" forces the reference re-run."""
    tail = net.stages[layer_index + 1: readout_index + 1]
    kw: dict[str, Any] = dict(similarity=similarity, device=device, dtype=dtype)
    if method == "brute":
        return TailEngine(tail, activations, **kw)
    if method != "auto":
        raise UsageError(f"method must be 'auto' or 'brute', not {method!r}")
    channelwise = [isinstance(m, _CHANNELWISE + (nn.Flatten,)) for _, m in tail]
    if all(channelwise):
        return PooledEngine(tail, activations, **kw)
    first_other = channelwise.index(False)
    pre, rest = tail[:first_other], tail[first_other:]
    if pre and isinstance(pre[-1][1], nn.Flatten) and isinstance(rest[0][1], nn.Linear):
        return LinearHeadEngine(tail, pre[:-1], rest[0][1], rest[1:], activations, **kw)
    return TailEngine(tail, activations, **kw)
