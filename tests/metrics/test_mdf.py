"""The MDF loss module: frozen eval-mode discriminators, devices and dtypes, DDP, task names and
shipped weights (repr, log), and the authors' reference values (recorded in
data/mdf_reference.json; the tests that need the authors' weight files,
../shared/reference/mdf/*.pth, skip without them)."""

from __future__ import annotations

import copy
import json
import logging
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import metrics
from metrics import mdf_weights
from metrics.discriminator import Discriminator
from metrics.mdf import MDFLoss, mdf
from metrics.mdf_weights import (
    convert_legacy,
    load_discriminators,
    load_legacy_discriminators,
    save_discriminators,
)

MDF_REFERENCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference" / "mdf"
REFERENCE = json.loads((Path(__file__).parent / "data" / "mdf_reference.json").read_text())


# ----------------------------------------------------------------------- the module


def test_module_is_frozen_and_stays_in_eval_mode(tiny_discriminators):
    m = MDFLoss(weights=tiny_discriminators, num_scales=4)
    assert isinstance(m.discriminators, nn.ModuleList)
    assert not any(p.requires_grad for p in m.parameters())
    m.train()
    assert m.training and not any(mod.training for mod in m.discriminators.modules())
    x, y = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    before = [b.clone() for b in m.buffers()]
    m(x, y)
    assert all(torch.equal(a, b) for a, b in zip(before, m.buffers()))  # BN stats untouched


def test_module_dtype_moves_and_dataparallel(tiny_discriminators):
    x, y = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    m = MDFLoss(weights=tiny_discriminators, num_scales=4)
    ref = m(x, y)
    m64 = copy.deepcopy(m).to(torch.float64)
    torch.testing.assert_close(m64(x.double(), y.double()).float(), ref, rtol=1e-5, atol=0)
    mh = copy.deepcopy(m).to(torch.bfloat16)
    vh = mh(x, y)
    assert vh.dtype == torch.float32
    torch.testing.assert_close(vh, ref, rtol=5e-2, atol=0)
    m16 = copy.deepcopy(m).half()
    torch.testing.assert_close(m16(x, y), ref, rtol=2e-2, atol=0)
    dp = nn.DataParallel(copy.deepcopy(m))
    if torch.cuda.is_available():  # DataParallel then runs on cuda:0 (TF32 convolutions allowed)
        torch.testing.assert_close(dp(x, y).cpu(), ref, rtol=1e-2, atol=0)
        with pytest.raises(
            ValueError, match="images are on cpu but the discriminators are on cuda"
        ):
            dp.module(x, y)  # DataParallel moved its module: a clear error, not a kernel's
    else:
        torch.testing.assert_close(dp(x, y), ref)
    # weights changed in place invalidate the cached folded convolutions
    with torch.no_grad():
        m.discriminators[0].head.conv.weight.mul_(2)
    assert not torch.allclose(m(x, y), ref)
    m_slow = MDFLoss(weights=list(m.discriminators), num_scales=4, fast=False)
    torch.testing.assert_close(m(x, y), m_slow(x, y), rtol=1e-5, atol=0)


def test_module_in_a_ddp_training_step(tiny_discriminators, tmp_path):
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        torch.manual_seed(0)
        net = nn.parallel.DistributedDataParallel(nn.Conv2d(3, 3, 3, padding=1))
        loss_fn = MDFLoss(weights=tiny_discriminators, num_scales=4, reduction="mean")
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        y = torch.rand(2, 3, 20, 20)
        losses = []
        for _ in range(3):
            opt.zero_grad()
            loss = loss_fn(net(y).clamp(0, 1), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert all(torch.isfinite(p.grad).all() for p in net.parameters())
        assert losses[-1] < losses[0]
    finally:
        dist.destroy_process_group()


def test_enable_grad_lets_the_discriminators_train(tiny_discriminators):
    m = MDFLoss(weights=copy.deepcopy(tiny_discriminators), num_scales=2, enable_grad=True)
    x, y = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    m(x, y).sum().backward()
    assert m.discriminators[0].head.conv.weight.grad is not None


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    """An empty stand-in for metrics/weights/."""
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setattr(mdf_weights, "WEIGHTS_DIR", folder)
    return folder


def test_task_without_weights_raises_a_clear_error_when_none_ship(weights_dir):
    with pytest.raises(ValueError, match="needs weights=.*task='sisr'"):
        metrics.create("mdf", task="sisr")
    with pytest.raises(ValueError, match="needs task= or weights="):
        metrics.create("mdf")
    with pytest.raises(ValueError, match="task must be one of"):
        MDFLoss(task="deblur", weights=[Discriminator(4)])


def test_task_without_weights_uses_the_shipped_file(weights_dir, tiny_discriminators):
    save_discriminators(weights_dir / "mdf_denoise.pt", tiny_discriminators, {"task": "denoise"})
    m = metrics.create("mdf", task="denoise", num_scales=4)
    assert m.task == "denoise" and len(m.discriminators) == 4
    x, y = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(m(x, y), mdf(x, y, tiny_discriminators, num_scales=4))


def test_task_is_checked_against_the_file(tmp_path, tiny_discriminators):
    path = tmp_path / "jpeg.pt"
    save_discriminators(path, tiny_discriminators, {"task": "jpeg"})
    m = metrics.create("mdf", task="jpeg", weights=str(path), num_scales=4)
    assert m.task == "jpeg"
    with pytest.raises(ValueError, match="trained for task 'jpeg', not 'sisr'"):
        metrics.create("mdf", task="sisr", weights=path, num_scales=4)


def test_task_accepts_every_name_of_the_task_contract(weights_dir, tmp_path, tiny_discriminators):
    """The tasks "sr" and "sisr" are one (scaling.contracts.tasks); files keep MDF's name."""
    save_discriminators(weights_dir / "mdf_sisr.pt", tiny_discriminators, {"task": "sisr"})
    for name in ("sr", "sisr", "SR", "super-resolution"):
        m = metrics.create("mdf", task=name, num_scales=4)
        assert m.task == "sisr" and m.weights_file.endswith("mdf_sisr.pt")
    path = tmp_path / "sr.pt"
    save_discriminators(path, tiny_discriminators, {"task": "sr"})
    assert load_discriminators(path)[1]["task"] == "sisr"
    assert MDFLoss(task="sr", weights=path, num_scales=4).task == "sisr"
    with pytest.raises(ValueError, match="trained for task 'sisr', not 'jpeg'"):
        MDFLoss(task="jpeg", weights=path, num_scales=4)
    with pytest.raises(ValueError, match="task must be one of sr, denoise, jpeg, sisr"):
        MDFLoss(task="deblur", weights=path)


def test_shipped_weights_are_named_in_the_repr_and_logged_once(caplog, monkeypatch):
    monkeypatch.setattr(sys.modules[MDFLoss.__module__], "_ANNOUNCED", set())
    caplog.set_level(logging.INFO, logger="metrics.mdf")
    m = metrics.create("mdf", task="denoise")
    MDFLoss(task="denoise")
    assert m.shipped and m.preset == "quick" and Path(m.weights_file).name == "mdf_denoise.pt"
    text = repr(m)
    assert "mdf_denoise.pt' (shipped)" in text and "preset='quick'" in text
    logged = [r for r in caplog.records if r.name == "metrics.mdf"]
    assert len(logged) == 1 and logged[0].levelno == logging.INFO
    assert "mdf_denoise.pt" in logged[0].getMessage() and "'quick'" in logged[0].getMessage()
    given = MDFLoss(weights=m.weights_file)  # an explicit file: named, not logged
    assert not given.shipped and "(given)" in repr(given) and given.preset == "quick"
    assert len([r for r in caplog.records if r.name == "metrics.mdf"]) == 1


def test_repr_of_modules_and_of_legacy_files(tiny_discriminators, tmp_path, write_legacy):
    m = MDFLoss(weights=tiny_discriminators, num_scales=4)
    assert "weights=modules, preset=None" in repr(m) and m.weights_file is None
    src = tmp_path / "Ds_FAKE.pth"
    write_legacy(src)
    legacy = MDFLoss(weights=src, num_scales=2)
    assert legacy.preset is None and "Ds_FAKE.pth' (given)" in repr(legacy)


def test_bad_selection_and_small_images_raise(tiny_discriminators):
    with pytest.raises(ValueError, match="num_scales must lie in 1..4"):
        MDFLoss(weights=tiny_discriminators, num_scales=8)
    with pytest.raises(ValueError, match="order"):
        MDFLoss(weights=tiny_discriminators, num_scales=4, order="random")
    m = MDFLoss(weights=tiny_discriminators, num_scales=4)
    x = torch.rand(1, 3, 10, 40)
    with pytest.raises(ValueError, match="at least 11x11"):
        m(x, x)
    with pytest.raises(TypeError, match="weights must be"):
        MDFLoss(weights=[nn.Conv2d(3, 3, 3)])


# ----------------------------------------------------------------------- reference values

needs_shared = pytest.mark.skipif(
    not MDF_REFERENCE.is_dir(), reason=f"authors' MDF weights not found in {MDF_REFERENCE}"
)


@needs_shared
@pytest.mark.parametrize("fname", sorted(REFERENCE["weights"]))
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "straightforward"])
def test_reference_values_of_the_authors_weights(fname, fast, mdf_reference_pair):
    x, y = mdf_reference_pair()
    ref, rel = REFERENCE["weights"][fname], REFERENCE["tolerance"]["rel"]
    path = MDF_REFERENCE / fname
    cases = {
        "default": {},
        "descending": {"order": "descending"},
        "one": {"num_scales": 1},
        "pm1": {"map_to_pm1": True},
    }
    for key, kw in cases.items():
        m = metrics.create("mdf", weights=path, reduction="mean", fast=fast, **kw)
        assert m(x, y).item() == pytest.approx(ref[key], rel=rel), key
        # the training path (prediction needs a gradient) gives the same value
        assert m(x.clone().requires_grad_(True), y).item() == pytest.approx(ref[key], rel=rel)
    per_image = metrics.create("mdf", weights=path, fast=fast)(x, y)
    assert per_image.tolist() == pytest.approx(ref["per_image"], rel=rel)


def test_recorded_reference_values_match_the_spec():
    """data/mdf_reference.json holds the spec's table (checked where the spec is at hand)."""
    spec = MDF_REFERENCE.parents[1] / "specs" / "mdf.md"
    if not spec.is_file():
        pytest.skip(f"no {spec} to compare with")
    rows = {}
    for line in spec.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] in REFERENCE["weights"]:
            rows[cells[0]] = cells[1:]
    assert set(rows) == set(REFERENCE["weights"])
    for fname, ref in REFERENCE["weights"].items():
        default, descending, one, per_image, pm1 = rows[fname]
        assert [ref["default"], ref["descending"], ref["one"], ref["pm1"]] == [
            float(default), float(descending), float(one), float(pm1)
        ]  # fmt: skip
        assert ref["per_image"] == [float(v) for v in per_image.split(",")]


@needs_shared
def test_authors_files_layout_and_conversion(tmp_path, mdf_reference_pair):
    for fname, ref in REFERENCE["weights"].items():
        discs = load_legacy_discriminators(MDF_REFERENCE / fname)
        assert [d.channels for d in discs] == ref["channels"], fname
    out = tmp_path / "jpeg.pt"
    convert_legacy(MDF_REFERENCE / "Ds_JPEG.pth", out, task="jpeg")
    x, y = mdf_reference_pair()
    m = metrics.create("mdf", task="jpeg", weights=out, reduction="mean")
    expected = REFERENCE["weights"]["Ds_JPEG.pth"]["default"]
    assert m(x, y).item() == pytest.approx(expected, rel=REFERENCE["tolerance"]["rel"])


def test_images_on_another_device_than_the_discriminators_are_refused(tiny_discriminators):
    m = MDFLoss(weights=tiny_discriminators, num_scales=4).to("meta")
    with pytest.raises(ValueError, match="images are on cpu but the discriminators are on meta"):
        m(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16))
