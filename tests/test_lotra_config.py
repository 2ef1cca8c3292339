"""LoTRA's explicit seams: the hooks it binds, the shared AdapterConfig, the rank resolver."""

from __future__ import annotations

import json
import warnings

import lightning as L
import pytest
import torch
from torch import nn

from lightning_kan import lotra
from lightning_kan.layers import KANConv2d, KANLinear
from lightning_kan.nets import KAN

CHEBYSHEV = {"basis": "chebyshev", "basis_kwargs": {"degree": 5}}
RANKS = {r"net\.layers\.1": [1, 2, 2], ".*": 2}  # Tiny's last layer has one output


class Tiny(L.LightningModule):
    """A user's own module: a KAN and a head, its own optimizer."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = KAN([2, 4, 1], **CHEBYSHEV)
        self.head = nn.Linear(1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(x))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def tiny_adapted() -> Tiny:
    module = Tiny()
    lotra.add_adapter(module, ranks=RANKS)
    with torch.no_grad():
        for tensor in lotra.adapted_tensors(module):
            tensor.adapters.adapters["default"].core.normal_()
    return module


# --- the hooks -------------------------------------------------------------------------------


def test_hooks_chain_the_module_own_and_uninstall_restores_it_exactly():
    module = tiny_adapted()
    calls = []

    def own_save(checkpoint):  # an instance-level hook the user set themselves
        calls.append("own")
        checkpoint["user"] = True

    module.on_save_checkpoint = own_save
    before = dict(vars(module))
    hooks = lotra.bind_lotra_hooks(module, "owner", lambda m: ("lotra", m))
    assert lotra.bound_lotra_hooks(module) is hooks
    assert dict(hooks.replaced) == {
        "configure_optimizers": None,
        "on_save_checkpoint": own_save,
        "on_load_checkpoint": None,
    }
    assert module.configure_optimizers() == ("lotra", module)

    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)  # the user's hook, then the plain form
    assert calls == ["own"] and checkpoint["user"] and "lotra" in checkpoint
    assert "net.layers.0.weight" in checkpoint["state_dict"]
    module.on_load_checkpoint(checkpoint)  # back to the adapted form
    module.load_state_dict(checkpoint["state_dict"])

    hooks.uninstall()
    assert vars(module).keys() == before.keys()
    assert all(vars(module)[key] is value for key, value in before.items())
    assert module.configure_optimizers.__func__ is Tiny.configure_optimizers
    assert module.on_load_checkpoint.__func__ is L.LightningModule.on_load_checkpoint
    assert module.on_save_checkpoint is own_save
    assert lotra.bound_lotra_hooks(module) is None
    with pytest.raises(ValueError, match="not installed"):
        hooks.uninstall()


def test_binding_again_is_idempotent_for_its_owner_and_refused_for_another():
    module = tiny_adapted()
    owner = object()
    hooks = lotra.bind_lotra_hooks(module, owner, lambda m: "first")
    bound = dict(vars(module))
    assert lotra.bind_lotra_hooks(module, owner, lambda m: "second") is hooks
    assert dict(vars(module)) == bound and module.configure_optimizers() == "first"
    with pytest.raises(
        ValueError,
        match=r"already has LoTRA hooks bound by another owner.*"
        r"uninstall\(\) first",
    ) as error:
        lotra.bind_lotra_hooks(module, object(), lambda m: "other")
    assert "\n" not in str(error.value)
    assert module.configure_optimizers() == "first"
    hooks.uninstall()
    assert lotra.bind_lotra_hooks(module, object(), lambda m: "other").installed


def test_hooks_refuse_manual_optimisation_and_plain_modules():
    module = Tiny()
    module.automatic_optimization = False
    with pytest.raises(ValueError, match="uses manual optimisation"):
        lotra.bind_lotra_hooks(module, "owner", lambda m: None)
    assert "configure_optimizers" not in vars(module)
    with pytest.raises(ValueError, match=r"bind onto a lightning\.LightningModule, got a KAN"):
        lotra.bind_lotra_hooks(KAN([2, 1]), "owner", lambda m: None)


def test_the_callback_binds_through_the_hooks_and_a_second_callback_is_refused(tmp_path):
    module = Tiny()
    callback = lotra.LoTRA(ranks=RANKS, lr=0.01)
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    callback.setup(trainer, module, "validate")
    callback.setup(trainer, module, "fit")  # every stage: the same hooks
    hooks = lotra.bound_lotra_hooks(module)
    assert hooks.owner is callback
    optimizer = module.configure_optimizers()
    assert optimizer.param_groups[0]["name"] == "lotra/core"
    other = lotra.LoTRA(ranks=1, adapter_name="other")
    with pytest.raises(ValueError, match="bound by another owner"):
        other.setup(trainer, module, "fit")
    assert all("other" not in t.adapters.adapters for t in lotra.adapted_tensors(module))
    hooks.uninstall()
    assert isinstance(module.configure_optimizers(), torch.optim.SGD)  # the user's own again


# --- one config for the callback, add_adapter and the file -----------------------------------


def test_one_config_checks_the_arguments_of_callback_and_add_adapter():
    with pytest.raises(ValueError, match=r"name='a\.b' cannot name an adapter"):
        lotra.AdapterConfig(name="a.b")
    with pytest.raises(ValueError, match=r"adapter_name='a\.b' cannot name an adapter"):
        lotra.LoTRA(adapter_name="a.b")
    with pytest.raises(ValueError, match=r"modules_to_save=\[3\] is not a module selector"):
        lotra.AdapterConfig(modules_to_save=[3])
    with pytest.raises(ValueError, match=r"clip_ranks='yes' must be True"):
        lotra.LoTRA(clip_ranks="yes")
    config = lotra.AdapterConfig(name="b", ranks=RANKS)
    assert lotra.LoTRA(adapter_name="b", ranks=RANKS).config == config
    net = Tiny()
    with pytest.raises(ValueError, match=r"config=.* must be an AdapterConfig given alone"):
        lotra.add_adapter(net, ranks=3, config=config)
    with pytest.raises(ValueError, match="must be an AdapterConfig given alone"):
        lotra.add_adapter(net, config={"ranks": 2})
    assert not lotra.adapted_tensors(net)
    adapted = lotra.add_adapter(net, config=config)
    assert [t.adapters.adapters["b"].ranks for t in adapted] == [(2, 2, 2), (1, 2, 2)]


def test_a_config_with_module_classes_cannot_be_written():
    with pytest.raises(ValueError, match=r"target_modules=\[<class .*KANLinear'>\] holds a mod"):
        lotra.AdapterConfig(target_modules=[KANLinear]).to_json()
    data = lotra.AdapterConfig(target_modules=["net.layers.0"], ranks=3).to_json()
    assert data == {
        "format": "lightning_kan.lotra/2",
        "name": "default",
        "ranks": 3,
        "target_modules": ["net.layers.0"],
        "exclude_modules": None,
        "modules_to_save": None,
        "parameter_name": "weight",
        "clip_ranks": False,
    }
    json.dumps(data)


def test_the_adapter_file_holds_the_resolved_config_that_rebuilds_it(tmp_path):
    source = tiny_adapted()
    directory = lotra.save_adapter(source, tmp_path / "adapter", modules_to_save="head")
    data = json.loads((directory / "adapter_config.json").read_text())
    config = lotra.AdapterConfig.from_json(data)
    assert data["format"] == "lightning_kan.lotra/2"
    assert config.ranks == {r"net\.layers\.0": [2, 2, 2], r"net\.layers\.1": [1, 2, 2]}
    assert config.target_modules == r"net\.layers\.0|net\.layers\.1"
    assert config.modules_to_save == ["head"]
    rebuilt = Tiny()
    lotra.add_adapter(rebuilt, config=config)
    assert [t.adapters.adapters["default"].ranks for t in lotra.adapted_tensors(rebuilt)] == [
        t.adapters.adapters["default"].ranks for t in lotra.adapted_tensors(source)
    ]


def test_an_adapter_file_written_the_old_way_still_loads(tmp_path):
    source = tiny_adapted()
    with torch.no_grad():
        source.head.weight.fill_(3.0)
    directory = lotra.save_adapter(source, tmp_path / "adapter", modules_to_save=["head"])
    new = json.loads((directory / "adapter_config.json").read_text())
    old_keys = ("name", "tensors", "modules_to_save", "trainable_parameters")
    old = {"format": "lightning_kan.lotra/1", **{key: new[key] for key in old_keys}}
    old |= {"weights_sha256": new["weights_sha256"], "base_fingerprint": new["base_fingerprint"]}
    (directory / "adapter_config.json").write_text(json.dumps(old, indent=2) + "\n")
    target = Tiny()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lotra.load_adapter(target, directory, name="renamed") == "renamed"
    x = torch.rand(8, 2) * 2 - 1
    assert torch.equal(target(x), source(x))
    assert torch.equal(target.head.weight, source.head.weight)


def test_a_file_whose_config_disagrees_with_its_tensors_is_named(tmp_path):
    directory = lotra.save_adapter(tiny_adapted(), tmp_path / "adapter")
    data = json.loads((directory / "adapter_config.json").read_text())
    data["ranks"][r"net\.layers\.0"] = [1, 1, 1]
    (directory / "adapter_config.json").write_text(json.dumps(data))
    net = Tiny()
    with pytest.raises(ValueError, match=r"adapter_config\.json is not a usable.*do not describe"):
        lotra.load_adapter(net, directory)
    assert not lotra.adapted_tensors(net)


# --- the rank resolver -----------------------------------------------------------------------


def test_the_resolver_raises_naming_the_mode_or_clips_with_one_warning():
    with pytest.raises(ValueError, match=r"rank 8 for the 'in' mode of x .* clip_ranks=True"):
        lotra.resolve_ranks(8, (8, 2, 6), "x")
    with pytest.warns(UserWarning, match=r"clipped 2 rank.*x 'in' 8 -> 2; x 'basis' 8 -> 6") as w:
        assert lotra.resolve_ranks(8, (8, 2, 6), "x", clip=True) == (8, 2, 6)
    assert len(w) == 1
    with pytest.raises(ValueError, match=r"ranks=0 is not|rank 0 for the 'out' mode"):
        lotra.resolve_ranks([0, 1, 1], (8, 2, 6), "x", clip=True)  # below 1: never clipped


def test_add_adapter_with_clip_ranks_warns_once_for_every_module():
    net = KAN([2, 8, 8, 1], **CHEBYSHEV)
    with pytest.raises(ValueError, match=r"rank 8 for the 'in' mode of layers\.0\.weight"):
        lotra.add_adapter(net, ranks=8)
    with pytest.warns(UserWarning, match="clip_ranks=True clipped") as caught:
        adapted = lotra.add_adapter(net, ranks=8, clip_ranks=True)
    assert len(caught) == 1 and "layers.2.weight" in str(caught[0].message)
    assert [t.adapters.adapters["default"].ranks for t in adapted] == [
        (8, 2, 6),
        (8, 8, 6),
        (1, 8, 6),
    ]
    conv = KANConv2d(3, 4, kernel_size=3, **CHEBYSHEV)
    with pytest.warns(UserWarning, match="clipped"):
        (tensor,) = lotra.add_adapter(conv, ranks=[9, 9, 9, 20], clip_ranks=True)
    assert tensor.adapters.adapters["default"].ranks == (4, 3, 6, 9)
