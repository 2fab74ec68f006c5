"""The stage decomposition of each network family must reproduce its forward pass exactly."""
import pytest
import torch

from aisviz.models import ModelError, list_layers, list_models, load_network, preprocess

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
