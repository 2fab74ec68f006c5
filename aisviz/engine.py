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

Read-outs are computed in the engine's dtype (float32 by default); similarity matrices are float64.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

SIMILARITIES = ("pearson", "cosine")

# Modules that act on each channel separately (in eval mode, where BatchNorm and Dropout are fixed),
# so zeroing channel j only changes channel j of their output.
_CHANNELWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.SiLU, nn.Hardswish, nn.GELU, nn.Sigmoid, nn.Tanh,
                nn.Hardsigmoid, nn.ELU, nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
                nn.AdaptiveMaxPool2d, nn.Dropout, nn.Identity)


def _check_similarity(similarity):
    if similarity not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {SIMILARITIES}, not {similarity!r}.")


def similarity_matrices(readouts: torch.Tensor, similarity: str = "pearson") -> torch.Tensor:
    """(M, n, D) read-outs -> (M, n, n) float64 similarity matrices (np.corrcoef rows, or cosine)."""
    r = readouts.double()
    if similarity == "pearson":
        r = r - r.mean(-1, keepdim=True)
    r = r / r.norm(dim=-1, keepdim=True)
    return r @ r.transpose(-1, -2)


def cross_similarity(modified: torch.Tensor, original: torch.Tensor, similarity: str = "pearson"):
    """Entry [m, i, k] = similarity of modified[m, i] with original[k]: (M, n, D), (n, D) -> (M, n, n)."""
    a, b = modified.double(), original.double()
    if similarity == "pearson":
        a, b = a - a.mean(-1, keepdim=True), b - b.mean(-1, keepdim=True)
    a, b = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    return a @ b.T


class TailEngine:
    """Brute force: zero the masked channels and re-run the tail stages for every mask and image."""

    kind = "brute-force re-run"

    def __init__(self, tail_stages, activations, similarity="pearson", device="cpu", dtype=torch.float32,
                 chunk_bytes: int = 2 ** 28):
        _check_similarity(similarity)
        self.tail = nn.Sequential(*[m for _, m in tail_stages]).eval()
        self.similarity, self.device, self.dtype, self.chunk_bytes = similarity, torch.device(device), dtype, chunk_bytes
        shapes = {tuple(a.shape) for a in activations}
        if len({s[0] for s in shapes}) != 1:
            raise ValueError("activations have different channel counts")
        self.n, self.n_maps = len(activations), next(iter(shapes))[0]
        # Images of one shape are run together; most sets have a single shape.
        self.groups = []
        for shape in sorted(shapes):
            idx = [i for i, a in enumerate(activations) if tuple(a.shape) == shape]
            self.groups.append((idx, torch.as_tensor(np.stack([activations[i] for i in idx])).to(self.device, dtype)))
        self.full_readouts = self.readouts(torch.ones(1, self.n_maps))[0]

    def _run_tail(self, x):
        with torch.no_grad():
            return self.tail.to(self.device, self.dtype)(x).flatten(1)

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
                raise ValueError("images of different sizes give read-outs of different lengths; use a read-out "
                                 "after global pooling, or resize the images to one size")
            out[:, idx] = r
        return out

    # --- the two mask families the method needs -------------------------------------------------------
    def full_rsm(self) -> torch.Tensor:
        return similarity_matrices(self.full_readouts[None], self.similarity)[0]

    def loo(self, js) -> tuple[torch.Tensor, torch.Tensor]:
        """Leave-one-map-out for maps js: (similarity matrices with map j zeroed in every image,
        cross[j, i, k] = similarity of image i with map j zeroed to the unmodified image k)."""
        r = self._loo_readouts(torch.as_tensor(js))
        return similarity_matrices(r, self.similarity), cross_similarity(r, self.full_readouts, self.similarity)

    def _loo_readouts(self, js):
        masks = torch.ones(len(js), self.n_maps)
        masks[torch.arange(len(js)), js] = 0
        return self.readouts(masks)

    def prefix_rsms(self, order, ks):
        """Yield (ks_chunk, rsms) where rsms[t] keeps only the maps order[:ks_chunk[t]]; ks ascending."""
        order = torch.as_tensor(np.ascontiguousarray(order))
        for chunk in self._chunks(list(ks)):
            masks = torch.zeros(len(chunk), self.n_maps)
            for t, k in enumerate(chunk):
                masks[t, order[:k]] = 1
            yield chunk, similarity_matrices(self.readouts(masks), self.similarity)

    def _chunks(self, items, per_item_bytes=None):
        per = per_item_bytes or max(1, self.n * self.full_readouts.shape[-1] * 8 * 4)
        step = max(1, self.chunk_bytes // per)
        return [items[s:s + step] for s in range(0, len(items), step)]


class LinearHeadEngine(TailEngine):
    """Tail = channel-wise stages, Flatten, Linear, head stages. See the module docstring."""

    kind = "precomputed per-map Linear contributions"

    def __init__(self, tail_stages, pre_stages, linear, head_stages, activations, **kw):
        super().__init__(tail_stages, activations, **kw)
        self.pre = nn.Sequential(*[m for _, m in pre_stages]).eval().to(self.device, self.dtype)
        self.head = nn.Sequential(*[m for _, m in head_stages]).eval().to(self.device, self.dtype)
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
            raise ValueError("Linear layer input size does not match the pooled perturbed layer")
        self.weight = w.view(w.shape[0], C, -1)                            # (out, C, s)
        self.delta = (pooled - zero[None]).reshape(self.n, C, -1)          # (n, C, s): change when a map is kept
        bias = linear.bias.detach().to(self.device, self.dtype) if linear.bias is not None else 0
        self.z_empty = bias + torch.einsum("ocs,cs->o", self.weight, zero.reshape(C, -1))  # all maps zeroed
        self.z_full = self.z_empty + torch.einsum("ocs,ics->io", self.weight, self.delta)
        # read-outs from the decomposition itself, so that every mask (all maps included) is computed one way
        self.full_readouts = self._head(self.z_full[None])[0]

    def _head(self, z):
        with torch.no_grad():
            m, n, d = z.shape
            return self.head(z.reshape(m * n, d)).reshape(m, n, -1)

    def contributions(self, js) -> torch.Tensor:
        """(J, n, out): how much keeping map j adds to the Linear pre-activation of each image."""
        return torch.einsum("ojs,ijs->jio", self.weight[:, js], self.delta[:, js])

    def _loo_readouts(self, js):
        return self._head(self.z_full[None] - self.contributions(js))

    def prefix_rsms(self, order, ks):
        order = np.ascontiguousarray(order)
        ks = list(ks)
        per = self.n * self.weight.shape[0] * self.dtype.itemsize * 4
        carry, done = self.z_empty.expand(self.n, -1).clone(), 0
        for chunk in self._chunks(ks, per):
            stop = chunk[-1]
            # running sum of contributions up to each k of the chunk, built in slices to bound memory
            z = torch.empty(len(chunk), self.n, carry.shape[-1], device=self.device, dtype=self.dtype)
            want = {k: t for t, k in enumerate(chunk)}
            for s in range(done, stop, max(1, len(chunk))):
                e = min(stop, s + max(1, len(chunk)))
                csum = carry[None] + torch.cumsum(self.contributions(torch.as_tensor(order[s:e])), 0)
                for t in range(e - s):
                    if s + t + 1 in want:
                        z[want[s + t + 1]] = csum[t]
                carry = csum[-1]
            done = stop
            yield chunk, similarity_matrices(self._head(z), self.similarity)


class PooledEngine(TailEngine):
    """Tail = channel-wise stages only; similarity matrices from per-channel sufficient statistics."""

    kind = "per-map sufficient statistics"

    def __init__(self, activations, **kw):
        super().__init__(**kw, activations=activations)
        C = self.n_maps
        x = self.full_readouts.double().view(self.n, C, -1)             # (n, C, s): read-out block per map
        with torch.no_grad():
            zero = self._run_tail(torch.zeros_like(self.groups[0][1][:1]))[0].double().view(C, -1)
        self.dim = x.shape[1] * x.shape[2]
        self.gram = torch.einsum("ics,kcs->ikc", x, x)                   # (n, n, C) per-map Gram matrices
        self.gram0 = (zero * zero).sum(-1)                               # (C,) zeroed map with itself
        self.cross0 = torch.einsum("cs,kcs->kc", zero, x)                # (n, C) zeroed map with image k's map
        self.sums = x.sum(-1)                                            # (n, C)
        self.sums0 = zero.sum(-1)                                        # (C,)

    def _rsm_from(self, S, s):
        """Similarity from dot products S (..., n, n) and element sums s (..., n)."""
        if self.similarity == "pearson":
            S = S / self.dim - s[..., :, None] * s[..., None, :] / self.dim ** 2
        d = torch.diagonal(S, dim1=-2, dim2=-1).clamp_min(0).sqrt()
        return S / (d[..., :, None] * d[..., None, :])

    def _masked_stats(self, masks):
        """masks (M, C) float64 -> dot products (M, n, n) and sums (M, n)."""
        S = self.gram0.sum() + torch.einsum("ikc,mc->mik", self.gram - self.gram0, masks)
        s = self.sums0.sum() + masks @ (self.sums - self.sums0).T
        return S, s

    def full_rsm(self):
        return self._rsm_from(*self._masked_stats(torch.ones(1, self.n_maps, dtype=torch.float64,
                                                             device=self.device)))[0]

    def loo(self, js):
        js = torch.as_tensor(js, device=self.device)
        S_full, s_full = self.gram.sum(-1), self.sums.sum(-1)
        dG = (self.gram[..., js] - self.gram0[js]).permute(2, 0, 1)      # (J, n, n)
        ds = (self.sums[:, js] - self.sums0[js]).T                       # (J, n)
        rsm = self._rsm_from(S_full[None] - dG, s_full[None] - ds)
        # image-specific: only image i loses map j; k keeps its full read-out
        S_mod = S_full[None] - self.gram[..., js].permute(2, 0, 1) + self.cross0[:, js].T[:, None, :]  # [j,i,k]
        s_mod = s_full[None] - ds                                        # (J, n) for the modified image i
        q_mod = torch.diagonal(S_full)[None] - torch.diagonal(self.gram[..., js], dim1=0, dim2=1) + self.gram0[js, None]
        q_k = torch.diagonal(S_full)
        if self.similarity == "pearson":
            D = self.dim
            cov = S_mod / D - s_mod[:, :, None] * s_full[None, None, :] / D ** 2
            var_i = q_mod / D - s_mod ** 2 / D ** 2
            var_k = q_k / D - s_full ** 2 / D ** 2
        else:
            cov, var_i, var_k = S_mod, q_mod, q_k
        cross = cov / (var_i.clamp_min(0).sqrt()[:, :, None] * var_k.clamp_min(0).sqrt()[None, None, :])
        return rsm, cross

    def prefix_rsms(self, order, ks):
        order = torch.as_tensor(np.ascontiguousarray(order), device=self.device)
        ks = list(ks)
        dG = (self.gram - self.gram0)[..., order]                        # (n, n, C) in ranked order
        ds = (self.sums - self.sums0)[:, order]
        cumG = torch.cumsum(dG, -1)
        cums = torch.cumsum(ds, -1)
        for chunk in self._chunks(ks, self.n * self.n * 8 * 2):
            idx = torch.as_tensor(chunk, device=self.device) - 1
            S = self.gram0.sum() + cumG[..., idx].permute(2, 0, 1)
            s = self.sums0.sum() + cums[:, idx].T
            yield chunk, self._rsm_from(S, s)


def make_engine(net, layer_index: int, readout_index: int, activations, similarity="pearson", device="cpu",
                dtype=torch.float32, method: str = "auto"):
    """The fastest exact engine for this tail; method="brute" forces the reference re-run."""
    tail = net.stages[layer_index + 1: readout_index + 1]
    kw = dict(similarity=similarity, device=device, dtype=dtype)
    if method == "brute":
        return TailEngine(tail, activations, **kw)
    if method != "auto":
        raise ValueError(f"method must be 'auto' or 'brute', not {method!r}")
    channelwise = [isinstance(m, _CHANNELWISE + (nn.Flatten,)) for _, m in tail]
    if all(channelwise):
        return PooledEngine(activations, tail_stages=tail, **kw)
    first_other = channelwise.index(False)
    pre, rest = tail[:first_other], tail[first_other:]
    if pre and isinstance(pre[-1][1], nn.Flatten) and isinstance(rest[0][1], nn.Linear):
        return LinearHeadEngine(tail, pre[:-1], rest[0][1], rest[1:], activations, **kw)
    return TailEngine(tail, activations, **kw)
