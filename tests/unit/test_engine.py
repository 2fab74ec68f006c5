"""Every fast engine must give the brute-force re-run's numbers (float64: 1e-9; float32: 1e-5 relative)."""
import numpy as np
import pytest
import torch
from torch import nn

from aisviz.core.engine import LinearHeadEngine, PooledEngine, TailEngine, make_engine
from aisviz.models.networks import Network


def _net(stages):
    for _, m in stages:
        m.eval()
    return Network(name="tiny", weights="none", stages=stages, mean=(0.5,) * 3, std=(0.5,) * 3)


def _activations(n=9, c=6, h=5, w=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.relu(torch.randn(n, c, h, w, generator=g))
    a[0, 2] = 0  # a dead map, as post-ReLU layers have
    return [x.numpy() for x in a]


def vgg_like(c=6, s=2, hidden=16, out=12):
    torch.manual_seed(1)
    return _net([("conv", nn.Conv2d(3, c, 3)), ("relu", nn.ReLU()), ("maxpool", nn.MaxPool2d(2, ceil_mode=True)),
                 ("avgpool", nn.AdaptiveAvgPool2d(s)), ("flatten", nn.Flatten(1)),
                 ("fc6", nn.Linear(c * s * s, hidden)),
                 ("relu6", nn.ReLU(inplace=True)), ("drop", nn.Dropout()), ("fc7", nn.Linear(hidden, out)),
                 ("relu7", nn.ReLU(inplace=True))])  # in place, as torchvision's VGG: must not corrupt cached sums


def pooled_with_bn(c=6):
    torch.manual_seed(2)
    bn = nn.BatchNorm2d(c)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-0.5, 0.5)  # a zeroed map becomes a non-zero constant after BN: exercises z_c
    return _net([("conv", nn.Conv2d(3, c, 3)), ("bn", bn), ("act", nn.ReLU6()), ("pool", nn.AdaptiveAvgPool2d(1)),
                 ("flatten", nn.Flatten(1))])


def spatial_readout(c=6):
    torch.manual_seed(3)
    return _net([("conv", nn.Conv2d(3, c, 3)), ("pool", nn.MaxPool2d(2)), ("act", nn.SiLU()),
                 ("flatten", nn.Flatten(1))])


def nonlinear_tail(c=6):
    torch.manual_seed(4)
    return _net([("conv", nn.Conv2d(3, c, 3)), ("mix", nn.Conv2d(c, 4, 1)), ("pool", nn.AdaptiveAvgPool2d(1)),
                 ("flatten", nn.Flatten(1))])


CASES = [(vgg_like, LinearHeadEngine, 9), (pooled_with_bn, PooledEngine, 4), (spatial_readout, PooledEngine, 3),
         (nonlinear_tail, TailEngine, 3)]


def _engines(build, similarity, dtype, readout):
    net = build()
    acts = _activations()
    kw = dict(similarity=similarity, dtype=dtype)
    return (make_engine(net, 0, readout, acts, **kw), make_engine(net, 0, readout, acts, method="brute", **kw))


@pytest.mark.parametrize("similarity", ["pearson", "cosine"])
@pytest.mark.parametrize("build,kind,readout", CASES)
def test_fast_engine_matches_brute_force(build, kind, readout, similarity):
    fast, brute = _engines(build, similarity, torch.float64, readout)
    assert type(fast) is kind
    C = fast.n_maps
    torch.testing.assert_close(fast.full_rsm(), brute.full_rsm(), rtol=1e-9, atol=1e-12)
    for a, b in zip(fast.loo(list(range(C))), brute.loo(list(range(C)))):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    order = np.random.default_rng(0).permutation(C)
    for ks in ([1, 2, 3, 4, 5, 6], [2, 5, 6]):
        got = torch.cat([r for _, r in fast.prefix_pairs(order, ks)])
        want = torch.cat([r for _, r in brute.prefix_pairs(order, ks)])
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_brute_force_is_a_real_rerun():
    """The reference itself: zeroing map j and running the tail by hand gives its LOO matrix."""
    net = vgg_like()
    acts = _activations()
    brute = make_engine(net, 0, 9, acts, method="brute", dtype=torch.float64)
    x = torch.as_tensor(np.stack(acts)).double()
    x[:, 3] = 0
    with torch.no_grad():
        r = net.run(x.float(), 1, 10).double().numpy()
    np.testing.assert_allclose(brute.loo([3])[0][0].numpy(), np.corrcoef(r)[np.triu_indices(len(r), 1)], rtol=1e-5)
    assert all(p.dtype == torch.float32 for _, m in net.stages for p in m.parameters()), "network was modified"


def test_float32_fast_path_within_1e5():
    fast, brute = _engines(vgg_like, "pearson", torch.float32, 9)
    order = np.arange(fast.n_maps)[::-1]
    got = torch.cat([r for _, r in fast.prefix_pairs(order, range(1, 7))])
    want = torch.cat([r for _, r in brute.prefix_pairs(order, range(1, 7))])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])  # without a GPU the CPU runs the same code


@pytest.mark.parametrize("device", DEVICES)
def test_linear_head_skips_silent_maps_with_identical_results(device):
    """Post-ReLU maps that are all zeros for an image leave its read-out unchanged: the fast path skips those
    (image, mask) rows of the head and still gives the brute-force numbers, LOO and nested curves alike."""
    net = vgg_like()
    acts = _activations()
    rng = np.random.default_rng(3)
    for a in acts:
        a[rng.random(len(a)) < 0.6] = 0        # most maps silent, as in real post-ReLU layers
    net.to(device)
    fast = make_engine(net, 0, 9, acts, dtype=torch.float64, device=device)
    brute = make_engine(net, 0, 9, acts, dtype=torch.float64, device=device, method="brute")
    assert isinstance(fast, LinearHeadEngine) and 0.3 < 1 - fast.active.double().mean() < 0.9
    C = fast.n_maps
    fast.rows_run = 0
    for a, b in zip(fast.loo(list(range(C))), brute.loo(list(range(C)))):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(fast.loo_pairs(list(range(C))), brute.loo_pairs(list(range(C))), rtol=1e-9, atol=1e-12)
    assert fast.rows_run == 2 * int(fast.active.sum())      # only active (map, image) rows ran the head
    order = np.random.default_rng(0).permutation(C)
    for ks in ([1, 2, 3, 4, 5, 6], [2, 5, 6], [3]):
        got = torch.cat([r for _, r in fast.prefix_pairs(order, ks)])
        want = torch.cat([r for _, r in brute.prefix_pairs(order, ks)])
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12, equal_nan=True)


@pytest.mark.slow
def test_resident_memory_stays_flat_over_chunks_at_2000_images():
    """Regression: after a large block was freed (as feature extraction does), each leave-one-map-out chunk at
    2000 images left ~3 MB of heap behind (6.7 GB instead of under 4 GB for the whole run)."""
    import subprocess
    import sys

    script = """
import numpy as np, torch
big = np.ones(33_000_000 // 8); del big   # raises glibc's mmap threshold, as feature extraction does
from torch import nn
from aisviz.core.alignment import AlignmentTarget, RowTarget
from aisviz.core.engine import make_engine
from aisviz.models.networks import Network
torch.set_num_threads(1)
n, c = 2000, 64
net = Network(name="pooled", weights="none", mean=(0.5,) * 3, std=(0.5,) * 3,
              stages=[("conv", nn.Conv2d(3, c, 1)), ("pool", nn.AdaptiveAvgPool2d(1)), ("flat", nn.Flatten(1))])
rng = np.random.default_rng(0)
engine = make_engine(net, 0, 2, [np.maximum(a, 0) for a in rng.standard_normal((n, c, 2, 2)).astype(np.float32)])
human = np.corrcoef(rng.standard_normal((n, 5)))
rows, target = RowTarget(human), AlignmentTarget(human)
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * 4096 / 2 ** 20
kept = []
for j in range(c):
    pairs, cross = engine.loo([j])
    kept.append((target(pairs), rows(cross)))
    del pairs, cross
    if j == 9:
        start = rss()
print(rss() - start)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert float(out.stdout.split()[-1]) < 40, "resident memory grew over the chunks"


def test_convolutions_run_in_full_float32_and_the_setting_is_restored(tiny_set, monkeypatch):
    """PyTorch lets cuDNN use TF32 for convolutions by default: on a GPU that moved activations by ~1e-3, flipped
    AIS rankings against the CPU's and failed the feature cache's check. Extraction and engine tails turn it off
    while they run, and give the caller's setting back."""
    from aisviz.models.features import extract_activations

    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    net = nonlinear_tail()
    seen = []
    for _, module in net.stages:
        module.register_forward_hook(lambda *_: seen.append(torch.backends.cudnn.allow_tf32))
    acts = extract_activations(tiny_set, net, "conv", use_cache=False, progress=False)
    engine = make_engine(net, 0, 3, acts)
    engine.loo([0, 1])
    assert seen and not any(seen)
    assert torch.backends.cudnn.allow_tf32 is True


def test_float32_convolutions_hold_while_threads_overlap(monkeypatch):
    """Thread A enters, B enters, A leaves (TF32 must stay off for B), B leaves (the caller's setting is back)."""
    import threading

    from aisviz.core.engine import full_float32_convolutions

    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    a_in, b_in, a_out, b_done = (threading.Event() for _ in range(4))
    seen = {}

    def a():
        with full_float32_convolutions():
            a_in.set()
            b_in.wait(10)
        a_out.set()

    def b():
        a_in.wait(10)
        with full_float32_convolutions():
            b_in.set()
            a_out.wait(10)
            seen["inside_b_after_a_left"] = torch.backends.cudnn.allow_tf32
        b_done.set()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert b_done.is_set()
    assert seen["inside_b_after_a_left"] is False
    assert torch.backends.cudnn.allow_tf32 is True
