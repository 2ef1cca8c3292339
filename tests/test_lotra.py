"""LoTRA: Tucker adapters, the callback, learning-rate groups, adapter life cycle, evidence."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from lightning_kan import lotra
from lightning_kan.cli import main
from lightning_kan.data import FunctionDataModule
from lightning_kan.layers import KANConv2d, KANLinear
from lightning_kan.layers.tucker import tucker_to_tensor
from lightning_kan.nets import KAN
from lightning_kan.pde import Elliptic, PDEDataModule, PINNTask

ROOT = Path(__file__).resolve().parents[1]

CHEBYSHEV = {"basis": "chebyshev", "basis_kwargs": {"degree": 5}}
# [2, 8, 8, 1]: modes (out, in, K=6) are (8, 2, 6), (8, 8, 6), (1, 8, 6)
RANKS = {r"net\.layers\.0|layers\.0": [4, 2, 3], r".*layers\.2": [1, 4, 3], ".*": [4, 4, 3]}


def pretrained_net(seed: int = 0) -> KAN:
    torch.manual_seed(seed)
    return KAN([2, 8, 8, 1], **CHEBYSHEV)


def randomise_adapters(model: nn.Module, name: str = "default") -> None:
    """Give every adapter a non-zero update (adapters start at exactly zero)."""
    with torch.no_grad():
        for tensor in lotra.adapted_tensors(model):
            if name in tensor.adapters.adapters:
                tensor.adapters.adapters[name].core.normal_()


class UserRegressor(L.LightningModule):
    """A plain user module, as someone would write it without lightning_kan.tasks."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.net = pretrained_net(seed)
        self.head_scale = nn.Linear(1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head_scale(self.net(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", nn.functional.mse_loss(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)  # replaced by LoTRA's


def toy_data() -> FunctionDataModule:
    return FunctionDataModule("kan-toy", num_train=200, num_val=50, num_test=50, batch_size=50)


def trainer(tmp_path, callbacks, max_epochs: int = 2, **kwargs) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        max_epochs=max_epochs,
        callbacks=callbacks,
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


# --- the adapter on one tensor -------------------------------------------------------------


def test_adapter_starts_at_zero_and_computes_the_tucker_update():
    net = pretrained_net()
    x = torch.rand(32, 2) * 2 - 1
    before = net(x)
    lotra.add_adapter(net, ranks=RANKS)
    assert torch.equal(net(x), before)
    randomise_adapters(net)
    layer = net.layers[1]
    delta = layer.parametrizations.weight[0].adapters["default"]
    expected = layer.parametrizations.weight.original + torch.einsum(
        "abc,oa,ib,kc->oik", delta.core, *delta.factors
    )
    torch.testing.assert_close(layer.weight, expected)
    assert not torch.equal(net(x), before)


def test_width_aware_init_scales_the_input_factor():
    delta = lotra.TuckerDelta((16, 400, 6), (4, 4, 4))
    assert abs(delta.factors[1].std().item() - 1 / math.sqrt(400)) < 0.01
    assert torch.allclose(delta.factors[0].T @ delta.factors[0], torch.eye(4), atol=1e-5)
    assert torch.count_nonzero(delta.core) == 0


def test_convolution_kernel_taps_are_a_fourth_mode():
    torch.manual_seed(0)
    conv = KANConv2d(3, 4, kernel_size=3, padding=1, **CHEBYSHEV)
    x = torch.randn(2, 3, 6, 6)
    before = conv(x)
    lotra.add_adapter(conv, ranks=[2, 2, 3])
    delta = conv.parametrizations.weight[0].adapters["default"]
    assert delta.ranks == (2, 2, 3, 9) and delta.mode_sizes == (4, 3, 6, 9)
    assert torch.equal(conv(x), before)
    randomise_adapters(conv)
    expected = tucker_to_tensor(delta.core, list(delta.factors)).reshape(4, 3, 6, 3, 3)
    torch.testing.assert_close(conv.weight - conv.parametrizations.weight.original, expected)


def test_adapter_gradcheck_float64():
    """Gradients reach the core and every factor through the parametrized layer."""
    layer = KANLinear(3, 2, **CHEBYSHEV).double()
    lotra.add_adapter(layer, ranks=[2, 2, 2])
    randomise_adapters(layer)
    prefix = "parametrizations.weight.0.adapters.default."
    names = [f"{prefix}core", *(f"{prefix}factors.{m}" for m in range(3))]
    state = dict(layer.named_parameters())
    x = torch.rand(4, 3, dtype=torch.float64, requires_grad=True)

    def output(x, *tensors):
        return torch.func.functional_call(layer, dict(zip(names, tensors, strict=True)), (x,))

    inputs = (x, *(state[n].detach().clone().requires_grad_() for n in names))
    assert torch.autograd.gradcheck(output, inputs)
    assert torch.autograd.gradgradcheck(output, inputs)


def test_foreign_module_with_its_own_coefficient_name():
    """A KAN layer from another library: efficient-kan names its tensor spline_weight."""

    class ForeignKAN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.spline_weight = nn.Parameter(torch.randn(3, 4, 5))

        def forward(self, phi: torch.Tensor) -> torch.Tensor:  # phi: (B, 4, 5)
            return torch.einsum("bik,oik->bo", phi, self.spline_weight)

    model = nn.Sequential(ForeignKAN(), nn.Linear(3, 1))
    phi = torch.randn(7, 4, 5)
    before = model(phi)
    adapted = lotra.add_adapter(model, ranks=2, parameter_name="spline_weight")
    assert [t.key for t in adapted] == ["0.spline_weight"]
    assert torch.equal(model(phi), before)


# --- selection and errors ------------------------------------------------------------------


def test_selection_by_regex_list_type_and_exclusion():
    net = pretrained_net()
    found = lotra.find_target_modules(net, r"layers\.[01]")
    assert list(found) == ["layers.0", "layers.1"]
    assert list(lotra.find_target_modules(net, ["layers.2"])) == ["layers.2"]
    assert list(lotra.find_target_modules(net, [KANLinear], exclude_modules=["layers.1"])) == [
        "layers.0",
        "layers.2",
    ]
    conv_net = nn.Sequential(nn.Conv2d(1, 2, 3), KANConv2d(2, 2, 3))
    assert list(lotra.find_target_modules(conv_net)) == ["1"]  # plain convs are no KAN


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ranks": 3}, r"rank 3 for the 'in' mode of layers\.0\.weight .* size 2"),
        ({"ranks": [9, 2, 2]}, r"rank 9 for the 'out' mode .* must be in 1\.\.8"),
        ({"ranks": [2, 2]}, r"expected an int or 3 ranks"),
        ({"ranks": {"layers\\.0": 1}}, r"no entry for module 'layers\.1'"),
        ({"target_modules": "decoder.*"}, r"found no module to adapt .*layers\.0"),
        ({"target_modules": ["missing_layer"], "ranks": 1}, r"'missing_layer' matches no module"),
    ],
)
def test_bad_adapter_arguments_are_clear_errors(kwargs, message):
    net = pretrained_net()
    with pytest.raises(ValueError, match=message):
        lotra.add_adapter(net, **{"ranks": RANKS, **kwargs})
    assert not lotra.adapted_tensors(net)  # nothing half-done


def test_non_3d_target_is_a_clear_error():
    model = nn.Sequential(KANLinear(2, 3, **CHEBYSHEV), nn.Linear(3, 1))
    with pytest.raises(
        ValueError, match=r"target '1' \(Linear\) has no coefficient tensor.*\(1, 3\)"
    ):
        lotra.add_adapter(model, ranks=1, target_modules=["0", "1"])


def test_callback_rejects_bad_strategy_and_grid_update_on_adapted_layer():
    with pytest.raises(ValueError, match="lr_strategy='fast' is unknown"):
        lotra.LoTRA(lr_strategy="fast")
    with pytest.raises(ValueError, match="unknown lr_multipliers key 'U9'"):
        lotra.component_lr(1e-3, "in", 4, multipliers={"U9": 2.0})
    net = KAN([2, 3, 1])
    lotra.add_adapter(net, ranks=[1, 2, 2])
    with pytest.raises(RuntimeError, match="update_grid on a layer whose coefficients carry"):
        net.update_grid(torch.rand(16, 2))


# --- learning-rate groups ------------------------------------------------------------------


def test_param_groups_follow_the_strategy_and_multipliers():
    net = pretrained_net()
    lotra.add_adapter(net, ranks=RANKS)
    width = lotra.lotra_param_groups(net, 0.01, "width")
    assert [(g["name"], g["lr"], len(g["params"])) for g in width] == [
        ("lotra/core", 0.01, 3),
        ("lotra/out", 0.01, 3),
        ("lotra/in/I=2", 0.005, 1),
        ("lotra/in/I=8", 0.00125, 2),
        ("lotra/basis", 0.01, 3),
    ]
    uniform = lotra.lotra_param_groups(net, 0.01, "uniform", {"basis": 0.5})
    assert [(g["name"], g["lr"]) for g in uniform] == [
        ("lotra/core", 0.01),
        ("lotra/out", 0.01),
        ("lotra/in", 0.01),
        ("lotra/basis", 0.005),
    ]
    grouped = {id(p) for g in width for p in g["params"]}
    adapters = lotra.adapted_tensors(net)
    assert grouped == {id(p) for t in adapters for p in t.adapters.adapters.parameters()}


# --- the callback in training --------------------------------------------------------------


def test_callback_trains_only_adapters_and_saved_modules_of_a_user_module(tmp_path):
    module = UserRegressor()
    x = torch.rand(16, 2) * 2 - 1
    before = module(x).detach()
    callback = lotra.LoTRA(ranks=RANKS, modules_to_save=["head_scale"], lr=0.01)
    fit = trainer(tmp_path, [callback], max_epochs=1)
    fit.validate(module, toy_data())  # setup for validate already injects: step 0 == pretrained
    torch.testing.assert_close(module(x), before, rtol=0, atol=0)
    initial = {k: v.clone() for k, v in module.state_dict().items()}
    # 3 layers (base, weight, bias, the basis' recorded normalization) + adapters + head
    assert len(initial) == 12 + 3 * 4 + 2
    fit = trainer(tmp_path, [callback], max_epochs=2)
    fit.fit(module, toy_data())
    optimizer = fit.optimizers[0]
    assert [g["name"] for g in optimizer.param_groups] == [
        "lotra/core",
        "lotra/out",
        "lotra/in/I=2",
        "lotra/in/I=8",
        "lotra/basis",
        "lotra/modules_to_save",
    ]
    assert [g["lr"] for g in optimizer.param_groups] == [0.01, 0.01, 0.005, 0.00125, 0.01, 0.01]
    trained = module.state_dict()
    for key, value in initial.items():
        changed = not torch.equal(trained[key], value)
        assert changed == (key.startswith("head_scale") or ".adapters.default." in key), key
    assert lotra.parameter_report(module).trainable == sum(
        p.numel() for g in optimizer.param_groups for p in g["params"]
    )


def test_checkpoint_loads_without_the_callback_and_resumes_exactly_with_it(tmp_path):
    data = toy_data
    straight = UserRegressor()
    trainer(tmp_path / "straight", [lotra.LoTRA(ranks=RANKS, lr=0.01)], max_epochs=4).fit(
        straight, data()
    )

    def resumable(root, epochs, ckpt_path=None):
        module = UserRegressor()
        checkpoint = ModelCheckpoint(dirpath=root, save_last=True)
        run = trainer(root, [lotra.LoTRA(ranks=RANKS, lr=0.01), checkpoint], max_epochs=epochs)
        run.fit(module, data(), ckpt_path=ckpt_path)
        return module

    resumable(tmp_path / "resumed", 2)
    resumed = resumable(tmp_path / "resumed", 4, ckpt_path=tmp_path / "resumed/last.ckpt")
    for key, value in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=0, msg=key)

    # the checkpoint is an ordinary one: the fine-tuned model loads without LoTRA
    checkpoint = torch.load(tmp_path / "resumed/last.ckpt", weights_only=True)
    assert "net.layers.0.weight" in checkpoint["state_dict"] and "lotra" in checkpoint
    plain = UserRegressor.load_from_checkpoint(tmp_path / "resumed/last.ckpt")
    x = torch.rand(16, 2) * 2 - 1
    torch.testing.assert_close(plain(x), resumed(x), rtol=1e-6, atol=1e-6)


# --- life cycle: merge, save/load, several adapters -------------------------------------------


def test_merge_gives_a_plain_kan_and_unmerge_restores_the_base_exactly():
    net = pretrained_net()
    pretrained = {k: v.clone() for k, v in net.state_dict().items()}
    lotra.add_adapter(net, ranks=RANKS)
    randomise_adapters(net)
    x = torch.rand(64, 2) * 2 - 1
    adapted = net(x).detach()
    lotra.merge_adapter(net)
    assert not lotra.adapted_tensors(net)
    assert set(net.state_dict()) == set(pretrained)  # a plain KAN again
    assert (net(x) - adapted).abs().max() <= 1e-6
    lotra.unmerge_adapter(net)
    for tensor in lotra.adapted_tensors(net):
        assert torch.equal(tensor.original, pretrained[tensor.key])
    torch.testing.assert_close(net(x), adapted, rtol=0, atol=0)
    with pytest.raises(ValueError, match="nothing to unmerge"):
        lotra.unmerge_adapter(net)


def test_save_and_load_adapter_round_trip_is_exact(tmp_path):
    net = pretrained_net()
    lotra.add_adapter(net, ranks=RANKS)
    randomise_adapters(net)
    lotra.save_adapter(net, tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter/adapter_config.json").read_text())
    assert config["name"] == "default" and config["tensors"]["layers.0.weight"]["ranks"] == [
        4,
        2,
        3,
    ]
    fresh = pretrained_net()
    assert lotra.load_adapter(fresh, tmp_path / "adapter") == "default"
    for (key, value), (fresh_key, fresh_value) in zip(
        net.state_dict().items(), fresh.state_dict().items(), strict=True
    ):
        assert key == fresh_key and torch.equal(value, fresh_value), key
    x = torch.rand(32, 2) * 2 - 1
    assert torch.equal(fresh(x), net(x))
    assert config["trainable_parameters"] == sum(
        p.numel() for t in lotra.adapted_tensors(net) for p in t.adapters.adapters.parameters()
    )
    with pytest.raises(ValueError, match="trained on a tensor of shape"):
        lotra.load_adapter(KAN([2, 8, 4, 1], **CHEBYSHEV), tmp_path / "adapter", name="other")
    with pytest.raises(FileNotFoundError, match=r"nowhere'.*the folder does not exist"):
        lotra.load_adapter(fresh, tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"adapter_config\.json is missing"):
        lotra.load_adapter(fresh, tmp_path / "empty")


def test_several_named_adapters_switch_and_disable():
    net = pretrained_net()
    x = torch.rand(32, 2) * 2 - 1
    base = net(x).detach()
    lotra.add_adapter(net, "p1", ranks=RANKS)
    randomise_adapters(net, "p1")
    out_p1 = net(x).detach()
    lotra.add_adapter(net, "p2", ranks=2, exclude_modules=["layers.0", "layers.2"])
    randomise_adapters(net, "p2")
    out_p2 = net(x).detach()
    assert not torch.allclose(out_p1, out_p2)
    lotra.set_active_adapter(net, "p1")
    assert torch.equal(net(x), out_p1)
    trainable = {n for n, p in net.named_parameters() if p.requires_grad and "adapters" in n}
    assert trainable and all(".adapters.p1." in n for n in trainable)
    with lotra.disable_adapters(net):
        assert torch.equal(net(x), base)
    assert torch.equal(net(x), out_p1)
    lotra.set_active_adapter(net, None)
    assert torch.equal(net(x), base)
    with pytest.raises(KeyError, match=r"no adapter named 'p3'.*'p1', 'p2'"):
        lotra.set_active_adapter(net, "p3")
    with pytest.raises(ValueError, match="already has an adapter named 'p1'"):
        lotra.add_adapter(net, "p1", ranks=RANKS)


# --- low-rank evidence ---------------------------------------------------------------------


def test_update_spectra_and_suggested_ranks_find_a_planted_tucker_rank():
    pretrained = pretrained_net()
    finetuned = pretrained_net()
    with torch.no_grad():
        for layer in finetuned.layers:
            o, i, k = layer.weight.shape
            core = torch.randn(min(o, 2), min(i, 2), 3)
            factors = [
                torch.randn(o, core.shape[0]),
                torch.randn(i, core.shape[1]),
                torch.randn(k, 3),
            ]
            layer.weight += tucker_to_tensor(core, factors)
    spectra = lotra.update_spectra(pretrained, finetuned)
    middle = spectra["layers.1"]
    assert middle["out"].shape == (8,) and middle["basis"].shape == (6,)
    # float32 weights: the planted rank shows as a drop to round-off (~1e-7 relative)
    assert middle["out"][2] < 1e-5 * middle["out"][0] < middle["out"][1]
    assert middle["basis"][3] < 1e-5 * middle["basis"][0] < middle["basis"][2]
    assert lotra.suggest_ranks(pretrained, finetuned, energy=0.999999)["layers.1"] == (2, 2, 3)
    figure = lotra.plot_spectra(spectra)
    assert len(figure.axes) == 3


# --- the CLI flow and DDP ------------------------------------------------------------------


def test_cli_pretrain_then_finetune_then_export(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    short = ["--trainer.max_epochs=1", "--data.init_args.steps_per_epoch=2"]
    main(["fit", "--config", str(ROOT / "configs/pde_elliptic.yaml"), *short])
    pretrained = tmp_path / "runs/pde_elliptic/version_0/checkpoints/last.ckpt"
    main(
        [
            "fit",
            "--config",
            str(ROOT / "configs/pde_elliptic_lotra.yaml"),
            *short,
            f"--trainer.callbacks.pretrained_checkpoint={pretrained}",
        ]
    )
    finetuned = PINNTask.load_from_checkpoint(
        tmp_path / "runs/pde_elliptic_lotra/version_0/checkpoints/last.ckpt"
    )  # no LoTRA here: the merged, plain fine-tuned KAN
    base = PINNTask.load_from_checkpoint(pretrained)
    x = torch.rand(64, 2)
    assert not torch.allclose(base(x), finetuned(x))
    lotra.load_adapter(base, tmp_path / "runs/pde_elliptic_lotra/adapter")
    torch.testing.assert_close(base(x), finetuned(x), rtol=1e-6, atol=1e-6)


def test_lotra_refuses_manual_optimisation(tmp_path):
    task = PINNTask(KAN([2, 4, 1], **CHEBYSHEV), lbfgs_epochs=1)
    with pytest.raises(ValueError, match="uses manual optimisation"):
        trainer(tmp_path, [lotra.LoTRA(ranks=1)]).fit(task, PDEDataModule(Elliptic()))


def test_two_process_ddp_finetune_keeps_ranks_identical(tmp_path):
    environment = dict(os.environ, PYTHONPATH=str(ROOT / "tests"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lightning_kan.cli",
            "fit",
            "--config",
            str(ROOT / "configs/pde_elliptic_lotra.yaml"),
            "--trainer.max_epochs=1",
            "--trainer.strategy=ddp",
            "--trainer.devices=2",
            "--data.init_args.steps_per_epoch=3",
            "--trainer.callbacks+=lightning_helpers.SaveRankWeights",
            f"--trainer.callbacks.folder={tmp_path / 'weights'}",
        ],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rank0 = torch.load(tmp_path / "weights/rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "weights/rank1.pt", weights_only=True)
    assert any(".adapters.default.core" in name for name in rank0)
    for name, value in rank0.items():
        torch.testing.assert_close(rank1[name], value, rtol=0, atol=0, msg=name)
    core = next(v for n, v in rank0.items() if n.endswith("adapters.default.core"))
    assert torch.count_nonzero(core) > 0  # the adapters did train


def test_callback_by_short_name_on_the_cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main(
        [
            "fit",
            "--config",
            str(ROOT / "configs/pde_elliptic.yaml"),
            "--trainer.max_epochs=1",
            "--data.init_args.steps_per_epoch=2",
            "--model.init_args.lbfgs_epochs=0",
            "--trainer.callbacks+=LoTRA",
            "--trainer.callbacks.ranks=[1, 2, 2]",
            "--trainer.callbacks.lr_strategy=uniform",
        ]
    )
    checkpoint = torch.load(
        tmp_path / "runs/pde_elliptic/version_0/checkpoints/last.ckpt", weights_only=True
    )
    adapter_keys = [k for k in checkpoint["lotra"]["state_dict"] if ".adapters.default." in k]
    assert len(adapter_keys) == 3 * 4  # core + 3 factors on each of the 3 layers


def test_pretrained_checkpoint_with_a_new_head_in_modules_to_save(tmp_path):
    class TwoOutputHead(UserRegressor):
        def __init__(self) -> None:
            super().__init__(seed=1)
            self.head_scale = nn.Linear(1, 2)  # a new task's head: new shape

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head_scale(self.net(x)).sum(-1, keepdim=True)

    pretrained = UserRegressor(seed=0)
    torch.save({"state_dict": pretrained.state_dict()}, tmp_path / "pretrained.ckpt")
    module = TwoOutputHead()
    callback = lotra.LoTRA(
        ranks=RANKS,
        modules_to_save=["head_scale"],
        pretrained_checkpoint=str(tmp_path / "pretrained.ckpt"),
    )
    trainer(tmp_path, [callback], max_epochs=1).fit(module, toy_data())
    for tensor in lotra.adapted_tensors(module):
        assert torch.equal(tensor.original, pretrained.state_dict()[tensor.key])
    assert module.head_scale.weight.shape == (2, 1)
    strict = lotra.LoTRA(ranks=RANKS, pretrained_checkpoint=str(tmp_path / "pretrained.ckpt"))
    with pytest.raises(RuntimeError, match=r"size mismatch for head_scale\.weight"):
        trainer(tmp_path, [strict], max_epochs=1).fit(TwoOutputHead(), toy_data())
    missing = lotra.LoTRA(ranks=RANKS, pretrained_checkpoint=str(tmp_path / "nowhere.ckpt"))
    with pytest.raises(FileNotFoundError, match=r"pretrained_checkpoint=.*does not exist"):
        trainer(tmp_path, [missing], max_epochs=1).fit(TwoOutputHead(), toy_data())


def test_bf16_mixed_finetune_has_finite_loss_and_keeps_the_base_exact(tmp_path):
    module = UserRegressor()
    fit = trainer(tmp_path, [lotra.LoTRA(ranks=RANKS, lr=0.01)], precision="bf16-mixed")
    fit.fit(module, toy_data())
    assert torch.isfinite(fit.callback_metrics["val/loss"])
    pretrained = UserRegressor().state_dict()
    for tensor in lotra.adapted_tensors(module):
        assert tensor.original.dtype == torch.float32
        assert torch.equal(tensor.original, pretrained[tensor.key])


def test_existing_project_example_adapts_to_mirrored_digits(tmp_path, monkeypatch):
    """examples/lotra_existing_project.py: LoTRA on the user's own digits module."""
    import runpy

    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    example = runpy.run_path(str(ROOT / "examples/lotra_existing_project.py"))
    results = example["main"](pretrain_epochs=3, finetune_epochs=3, folder=str(tmp_path))
    assert results["pretrained, digits"] > 0.8
    assert results["LoTRA, mirrored"] > results["pretrained, mirrored"] + 0.2
    assert results["trainable parameters"] == 1680
    assert results["adapter file reproduces the model"]
    assert results["merged max difference"] <= 1e-6
