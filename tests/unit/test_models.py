"""The stage decomposition of each network family must reproduce its forward pass exactly."""
import pytest
import torch

from aisviz.errors import ModelError
from aisviz.models.networks import list_layers, list_models, load_network, preprocess

FAMILIES = ["vgg11", "alexnet", "resnet18", "densenet121", "efficientnet_b0", "mobilenet_v2", "mobilenet_v3_small",
            "mnasnet0_5", "regnet_x_400mf", "shufflenet_v2_x0_5", "squeezenet1_1", "convnext_tiny", "googlenet",
            "inception_v3", "efficientnet_lite0"]


@pytest.mark.parametrize("name", FAMILIES)
def test_stages_compose_to_forward(name):
    torch.manual_seed(0)
    net = load_network(name, weights="none")
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        torch.testing.assert_close(net.run(x), net.module(x), rtol=1e-5, atol=1e-5)
    li, ri = net.resolve_layers(None, None)
    assert li < ri
    layers = {row["name"]: row for row in list_layers(net, 112)}
    assert layers[net.default_layer]["conv_map"], "the default perturbed layer must output feature maps"


def test_paper_defaults_for_vgg16():
    net = load_network("vgg16", weights="none")
    assert (net.default_layer, net.default_readout) == ("features.29", "classifier.4")  # conv5_3+ReLU, fc7+ReLU
    rows = {r["name"]: r for r in list_layers(net)}
    assert rows["features.29"]["shape"] == [512, 14, 14]
    assert rows["classifier.4"]["shape"] == [4096]


def test_offline_network_defaults():
    net = load_network("efficientnet_lite0")
    rows = {r["name"]: r for r in list_layers(net)}
    assert rows["_head_act"]["shape"] == [1280, 7, 7] and rows["flatten"]["shape"] == [1280]
    assert (net.default_layer, net.default_readout) == ("_head_act", "flatten")


@pytest.mark.realdata
def test_offline_network_recognises_real_animals(real_data_root):
    """Real pretrained weights: Peterson's animal photos get ImageNet animal classes (indices 0-397)."""
    from PIL import Image

    folder = real_data_root / "peterson2018" / "animals" / "images"
    files = sorted(folder.iterdir())[::12]
    net = load_network("efficientnet_lite0")
    with torch.no_grad():
        top = [net.run(preprocess(net, Image.open(f).convert("RGB"))).argmax().item() for f in files]
    assert sum(t <= 397 for t in top) >= 0.9 * len(top), top


def test_unknown_names_suggest_close_matches():
    with pytest.raises(ModelError, match="vgg16"):
        load_network("vgg61")
    net = load_network("efficientnet_lite0")
    with pytest.raises(ModelError, match="_head_act"):
        net.resolve_layers("_head_ac", None)
    with pytest.raises(ModelError, match="before"):
        net.resolve_layers("_head_act", "_conv_head")


def test_offline_weights_fail_fast_with_a_fix(tmp_path, monkeypatch):
    import time

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    t = time.monotonic()
    with pytest.raises(ModelError) as err:
        load_network("resnet18")
    assert time.monotonic() - t < 60
    msg = str(err.value)
    assert "efficientnet_lite0" in msg and str(tmp_path) in msg


def test_registry_lists_offline_and_torchvision_cnns():
    names = [m["name"] for m in list_models()]
    assert names[0] == "efficientnet_lite0" and "vgg16" in names and "resnet50" in names
    assert not any(n.startswith("vit_") for n in names)


def test_the_network_list_is_kept_so_listing_needs_no_torch(tmp_path, monkeypatch):
    """`aisviz models` and the dashboard's menu list torchvision's networks; the second listing reads the kept
    file (no torch import), and a damaged file is listed again."""
    import subprocess
    import sys

    import torchvision.models as tvm

    monkeypatch.setenv("AISVIZ_HOME", str(tmp_path))
    first = [m["name"] for m in list_models()]
    assert set(first[1:]) == {n for n in tvm.list_models(module=tvm) if not n.startswith(("vit_", "swin_", "maxvit_"))}
    kept = list((tmp_path / "catalog").glob("torchvision-*-cnns.json"))
    assert len(kept) == 1
    again = subprocess.run([sys.executable, "-c", "import sys; from aisviz.models.networks import list_models; "
                            "print(len(list_models()), 'torch' in sys.modules)"],
                           capture_output=True, text=True, timeout=120, check=True)
    assert again.stdout.split() == [str(len(first)), "False"]
    kept[0].write_text("{not json")
    assert [m["name"] for m in list_models()] == first
    assert kept[0].read_text().startswith('["')


# ---------------------------------------------------------------------------------------------
# Weights: enum names, local files, timm


def test_weights_enum_names(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty hub cache: nothing to find offline
    with pytest.raises(ModelError, match=r"vgg16 has no weights 'IMAGENET9K'; choose one of IMAGENET1K_V1"):
        load_network("vgg16", weights="IMAGENET9K")
    with pytest.raises(ModelError) as err:  # a real member: fails only for want of the file, which it names
        load_network("resnet50", weights="IMAGENET1K_V1")
    assert "resnet50-0676ba61.pth" in str(err.value) and "--weights-file" in str(err.value)
    with pytest.raises(ModelError, match="one set of weights"):
        load_network("efficientnet_lite0", weights="IMAGENET1K_V1")


def test_weights_file_loads_a_saved_state_dict(tmp_path):
    torch.manual_seed(1)
    source = load_network("resnet18", weights="none")
    path = tmp_path / "resnet18-mine.pt"
    torch.save(source.module.state_dict(), path)
    torch.manual_seed(2)
    net = load_network("resnet18", weights_file=path)
    for (k, a), b in zip(source.module.state_dict().items(), net.module.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)
    assert net.weights.startswith("file:resnet18-mine.pt:")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net.run(x), source.module(x))
    torch.save({"state_dict": source.module.state_dict()}, tmp_path / "wrapped.pt")  # a common checkpoint layout
    assert load_network("resnet18", weights_file=tmp_path / "wrapped.pt").weights.startswith("file:wrapped.pt")


def test_weights_file_for_another_architecture_is_refused(tmp_path):
    torch.save(load_network("resnet34", weights="none").module.state_dict(), tmp_path / "r34.pt")
    with pytest.raises(ModelError, match=r"does not fit resnet18: of its tensors, .*unexpected \(e\.g\. layer1\.2"):
        load_network("resnet18", weights_file=tmp_path / "r34.pt")
    head = load_network("resnet18", weights="none").module.state_dict()
    head["fc.weight"] = torch.zeros(10, 512)
    torch.save(head, tmp_path / "ten-classes.pt")
    with pytest.raises(ModelError, match=r"1 of another shape \(e\.g\. fc\.weight: file \(10, 512\), resnet18 "
                                         r"\(1000, 512\)\)"):
        load_network("resnet18", weights_file=tmp_path / "ten-classes.pt")


class NotWeights:
    """Any object: unpickling it would run import code of the file's choosing."""


def test_weights_file_is_never_unpickled(tmp_path):
    import pickle

    (tmp_path / "code.pt").write_bytes(pickle.dumps(NotWeights()))
    with pytest.raises(ModelError, match="cannot load weights file .* as a plain state_dict"):
        load_network("resnet18", weights_file=tmp_path / "code.pt")


def test_cli_runs_with_a_weights_file(tmp_path, capsys, tiny_set):
    import json

    import numpy as np

    from aisviz.cli.commands import main

    root = tmp_path / "set"
    (root / "images").mkdir(parents=True)
    for name, img in zip(tiny_set.image_names, tiny_set.images):
        img.save(root / "images" / name)
    np.save(root / "similarity.npy", tiny_set.similarity)
    torch.manual_seed(0)
    torch.save(load_network("resnet18", weights="none").module.state_dict(), tmp_path / "w.pt")
    assert main(["score", "--dataset", str(root), "--model", "resnet18", "--weights-file", str(tmp_path / "w.pt"),
                 "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["weights"].startswith("file:w.pt:") and out["n_maps"] == 512
    assert main(["score", "--dataset", str(root), "--model", "resnet34", "--weights-file", str(tmp_path / "w.pt"),
                 "--quiet"]) == 3
    assert "does not fit resnet34" in capsys.readouterr().err


def test_timm_cnn_by_name():
    pytest.importorskip("timm")
    torch.manual_seed(0)
    net = load_network("timm:resnet18", weights="none")
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(net.run(x), net.module(x))
        assert net.run(x, 0, 1).shape == (2, 512, 3, 3)      # the perturbed maps
        assert net.run(x, 0, 2).shape == (2, 512)            # the pooled pre-logits read-out
    assert net.resolve_layers(None, None) == (0, 1)
    with pytest.raises(ModelError, match="timm:resnet18"):
        load_network("timm:resnet81", weights="none")


def test_timm_cnn_is_scored(tiny_set):
    pytest.importorskip("timm")
    import numpy as np

    from aisviz import AlignmentImportance

    torch.manual_seed(0)
    net = load_network("timm:resnet18", weights="none")
    scorer = AlignmentImportance(progress=False, use_cache=False).fit(tiny_set, network=net)
    assert scorer.ais_.shape == (512,) and np.isfinite(scorer.r2_all_)
    assert (scorer.layer_, scorer.readout_) == ("forward_features", "pre_logits")


def test_weights_file_error_never_advises_loading_it_unrestricted(tmp_path):
    """torch's message suggests re-running with weights_only=False, which would run the file's code: not quoted."""
    import torch

    torch.save({"layer.weight": torch.zeros(2), "extra": NotWeights()}, tmp_path / "objects.pt")
    with pytest.raises(ModelError) as info:
        load_network("resnet18", weights_file=tmp_path / "objects.pt")
    text = str(info.value)
    assert "weights_only" not in text and "\n" not in text and "\x1b" not in text
    assert "holds Python objects that are not tensors: Unsupported global: GLOBAL test_models.NotWeights" in text
    assert "torch.save(model.state_dict(), path)" in text
