"""Pretrained trunks (VGG, AlexNet) come from torch's cache or an explicit file, never from the
network and never silently random; VGG/LPIPS/PDL wiring on top of them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance

import metrics
from metrics._pretrained import build_features, weights_path
from metrics.lpips_loss import LPIPSLoss
from metrics.pdl import PDLLoss, sorted_wasserstein1d
from metrics.vgg import VGGFeatures, VGGLoss, vgg_layer_names


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def _fake_torchvision_file(arch, path, seed=0):
    """A torchvision-layout weight file (features only) with random values."""
    torch.manual_seed(seed)
    feats = build_features(arch, pretrained=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({f"features.{k}": v for k, v in feats.state_dict().items()}, path)
    return feats


@pytest.mark.parametrize(
    "name, fname",
    [
        ("vgg", "vgg16-397923af.pth"),
        ("pdl", "vgg16-397923af.pth"),
        ("lpips", "alexnet-owt-7be5be79.pth"),
    ],
)
def test_missing_weights_raise_naming_the_file_and_how_to_get_it(name, fname, empty_cache):
    with pytest.raises(FileNotFoundError) as e:
        metrics.create(name)
    msg = str(e.value)
    assert fname in msg and "download.pytorch.org" in msg and str(empty_cache) in msg


def test_vgg19_and_lpips_vgg_name_their_files(empty_cache):
    with pytest.raises(FileNotFoundError, match="vgg19-dcbb9e9d.pth"):
        metrics.create("vgg", arch="vgg19", layers=("relu5_4",))
    with pytest.raises(FileNotFoundError, match="vgg16-397923af.pth"):
        metrics.create("lpips", net="vgg")


def test_explicit_path_and_unknown_trunk(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        weights_path("vgg16", tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="unknown trunk"):
        weights_path("resnet50")
    with pytest.raises(TypeError, match="pretrained"):
        build_features("vgg16", pretrained=1)


def test_vgg_loads_weights_from_the_cache(empty_cache):
    feats = _fake_torchvision_file("vgg16", empty_cache / "vgg16-397923af.pth")
    m = VGGLoss(layers=("relu3_3",))  # pretrained=True: from the cache
    for k, v in m.trunk.features.state_dict().items():
        assert torch.equal(v, feats.state_dict()[k])
    assert len(m.trunk.features) == 16  # truncated after relu3_3


def test_wrong_file_for_the_architecture_is_refused(tmp_path):
    path = tmp_path / "alex.pth"
    _fake_torchvision_file("alexnet", path)
    with pytest.raises(ValueError, match="does not hold torchvision vgg16 weights"):
        VGGFeatures("vgg16", pretrained=path)


def test_vgg_layer_names_follow_torchvision_indices():
    names = vgg_layer_names(build_features("vgg16", pretrained=False))
    assert [names[i] for i in (3, 8, 15, 22, 29, 30)] == [
        "relu1_2",
        "relu2_2",
        "relu3_3",
        "relu4_3",
        "relu5_3",
        "pool5",
    ]
    names19 = vgg_layer_names(build_features("vgg19", pretrained=False))
    assert names19[35] == "relu5_4"
    with pytest.raises(ValueError, match="unknown vgg16 layers"), pytest.warns(UserWarning):
        VGGFeatures("vgg16", ("relu5_4",), pretrained=False)


def test_vgg_features_equal_a_manual_forward():
    torch.manual_seed(0)
    with pytest.warns(metrics.RandomWeightsWarning):
        trunk = VGGFeatures("vgg16", ("relu1_2", "relu2_2"), pretrained=False)
    x = torch.rand(1, 3, 32, 32)
    h = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]
    ).view(1, 3, 1, 1)
    outs = []
    for i, layer in enumerate(trunk.features):
        h = layer(h)
        if i in (3, 8):
            outs.append(h)
    got = trunk(x)
    torch.testing.assert_close(got[0], outs[0])
    torch.testing.assert_close(got[1], outs[1])


def test_lpips_trunk_from_cache_matches_the_lpips_package_own_loading(empty_cache, monkeypatch):
    """Our weight mapping against lpips' own construction from a torchvision model."""
    import lpips.pretrained_networks as pn
    import torchvision

    _fake_torchvision_file("alexnet", empty_cache / "alexnet-owt-7be5be79.pth", seed=3)
    ours = LPIPSLoss(as_loss=False)  # trunk from the (fake) cache

    original = torchvision.models.alexnet

    def alexnet_from_cache(pretrained=False, **_):
        net = original(weights=None)
        sd = torch.load(empty_cache / "alexnet-owt-7be5be79.pth", weights_only=True)
        net.load_state_dict(sd, strict=False)
        return net

    monkeypatch.setattr(pn.tv, "alexnet", alexnet_from_cache)
    import lpips

    theirs = lpips.LPIPS(net="alex", verbose=False).eval()
    g = torch.Generator().manual_seed(0)
    y = torch.rand(2, 3, 64, 64, generator=g)
    x = (y + 0.1 * torch.randn(y.shape, generator=g)).clamp(0, 1)
    expected = theirs(x, y, normalize=True).flatten()
    torch.testing.assert_close(ours(x, y), expected)


@pytest.mark.parametrize("name", ["vgg", "lpips", "pdl"])
def test_random_trunks_warn_that_the_values_are_meaningless(name):
    with pytest.warns(metrics.RandomWeightsWarning, match="meaningless for quality assessment"):
        metrics.create(name, pretrained=False)
    assert issubclass(metrics.RandomWeightsWarning, UserWarning)


def test_loaded_trunks_do_not_warn(empty_cache):
    import warnings

    _fake_torchvision_file("vgg16", empty_cache / "vgg16-397923af.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("error", metrics.RandomWeightsWarning)
        VGGLoss()
        PDLLoss()


def test_lpips_module_stays_in_eval_mode():
    with pytest.warns(metrics.RandomWeightsWarning):
        m = LPIPSLoss(pretrained=False)
    m.train()
    assert not any(mod.training for mod in m.modules())


def test_sorted_wasserstein_matches_scipy():
    g = torch.Generator().manual_seed(0)
    fx = torch.randn(2, 5, 7, 6, generator=g, dtype=torch.float64)
    fy = torch.randn(2, 5, 7, 6, generator=g, dtype=torch.float64) * 2 + 1
    got = sorted_wasserstein1d(fx, fy)
    for b in range(2):
        expected = np.mean(
            [
                wasserstein_distance(fx[b, c].flatten().numpy(), fy[b, c].flatten().numpy())
                for c in range(5)
            ]
        )
        assert got[b].item() == pytest.approx(expected, rel=1e-10)
    # distributions ignore positions: a spatial permutation costs nothing
    perm = torch.randperm(42, generator=g)
    shuffled = fx.flatten(2)[..., perm].view_as(fx)
    assert sorted_wasserstein1d(fx, shuffled).abs().max().item() < 1e-12
    with pytest.raises(ValueError, match="shapes differ"):
        sorted_wasserstein1d(fx, fy[:, :3])


def test_pdl_adds_the_pixel_l1_term():
    torch.manual_seed(0)
    with pytest.warns(metrics.RandomWeightsWarning):
        pdl = PDLLoss(pretrained=False, l1_weight=0.0)
    torch.manual_seed(0)
    with pytest.warns(metrics.RandomWeightsWarning):
        pdl_l1 = PDLLoss(pretrained=False, l1_weight=1.0)
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    torch.testing.assert_close(pdl_l1(x, y), pdl(x, y) + (x - y).abs().mean((1, 2, 3)))
