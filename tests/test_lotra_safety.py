"""LoTRA safety: adapters never load into the wrong base, files are atomic, bad input is named."""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from lightning_kan import lotra
from lightning_kan.layers import KANLinear
from lightning_kan.nets import KAN

CHEBYSHEV = {"basis": "chebyshev", "basis_kwargs": {"degree": 5}}
RANKS = {r"layers\.2": [1, 2, 2], ".*": 2}  # layer 2 has one output


def base_net(seed: int = 0, widths=(2, 8, 8, 1), **kwargs) -> KAN:
    torch.manual_seed(seed)
    return KAN(list(widths), **{**CHEBYSHEV, **kwargs})


def adapted(seed: int = 0, adapter_seed: int = 1, **kwargs) -> KAN:
    """A base with a trained-looking (non-zero) adapter 'default'."""
    net = base_net(seed, **kwargs)
    lotra.add_adapter(net, ranks=RANKS)
    torch.manual_seed(adapter_seed)
    with torch.no_grad():
        for tensor in lotra.adapted_tensors(net):
            tensor.adapters.adapters["default"].core.normal_()
    return net


def saved(tmp_path: Path, net: nn.Module | None = None, folder: str = "adapter") -> Path:
    return lotra.save_adapter(adapted() if net is None else net, tmp_path / folder)


def config_of(directory: Path) -> dict:
    return json.loads((directory / "adapter_config.json").read_text())


def rewrite_config(directory: Path, change) -> None:
    config = config_of(directory)
    change(config)
    (directory / "adapter_config.json").write_text(json.dumps(config))


X = torch.linspace(-1, 1, 32).reshape(16, 2)


# --- item 7: the base fingerprint --------------------------------------------------------


def test_adapter_refuses_a_different_base_naming_both_fingerprints_and_the_path(tmp_path):
    directory = saved(tmp_path)
    other = base_net(seed=1)  # same shapes, other weights
    before = other(X).detach()
    digest = config_of(directory)["base_fingerprint"]["sha256"]
    with pytest.raises(ValueError, match="different base model") as error:
        lotra.load_adapter(other, directory)
    message = str(error.value)
    assert digest in message and str(directory) in message
    assert lotra.base_fingerprint(other, ["layers.0", "layers.1", "layers.2"])["sha256"] in message
    assert "layers.0.weight" in message and "allow_different_base=True" in message
    assert not lotra.adapted_tensors(other)  # refused before touching the model
    assert torch.equal(other(X), before)


def test_allow_different_base_loads_with_one_warning(tmp_path):
    source = adapted()
    directory = saved(tmp_path, source)
    other = base_net(seed=1)
    with pytest.warns(UserWarning, match="different base model") as caught:
        lotra.load_adapter(other, directory, allow_different_base=True)
    assert len([w for w in caught if "different base" in str(w.message)]) == 1
    for mine, theirs in zip(
        lotra.adapted_tensors(other), lotra.adapted_tensors(source), strict=True
    ):
        delta, expected = mine.adapters.adapters["default"], theirs.adapters.adapters["default"]
        assert torch.equal(delta.core, expected.core)


def test_the_same_base_loads_silently_also_upcast_to_float64(tmp_path):
    source = adapted()
    directory = saved(tmp_path, source)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lotra.load_adapter(base_net(), directory)
        lotra.load_adapter(base_net().double(), directory)  # same float32 weights, upcast


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_fingerprint_does_not_depend_on_the_device():
    modules = ["layers.0", "layers.1", "layers.2"]
    on_cpu = lotra.base_fingerprint(base_net(), modules)
    assert lotra.base_fingerprint(base_net().cuda(), modules) == on_cpu


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda net: net.layers[1].base_weight.add_(1e-3), "layers.1.base_weight"),
        (lambda net: net.layers[2].bias.add_(1e-3), "layers.2.bias"),
        (lambda net: net.layers[0].weight.mul_(-1), "layers.0.weight"),
    ],
)
def test_any_frozen_base_tensor_that_differs_is_named(tmp_path, change, named):
    directory = saved(tmp_path)
    other = base_net()
    with torch.no_grad():
        change(other)
    with pytest.raises(ValueError, match=rf"different values: {named}"):
        lotra.load_adapter(other, directory)


def test_a_moved_bspline_grid_is_another_base(tmp_path):
    net = base_net(basis="bspline", basis_kwargs={})
    lotra.add_adapter(net, ranks=RANKS)
    directory = lotra.save_adapter(net, tmp_path / "adapter")
    other = base_net(basis="bspline", basis_kwargs={})
    other.update_grid(torch.rand(64, 2) * 0.5)  # grids move, weights refitted
    with pytest.raises(ValueError, match=r"layers\.0\.basis\.grid"):
        lotra.load_adapter(other, directory)


class WithHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = base_net()
        self.head = nn.Linear(1, 1)


def test_modules_to_save_are_not_part_of_the_base(tmp_path):
    source = WithHead()
    lotra.add_adapter(source, ranks={r"net\.layers\.2": [1, 2, 2], ".*": 2})
    with torch.no_grad():
        source.head.weight.fill_(3.0)  # trained fully
    directory = lotra.save_adapter(source, tmp_path / "adapter", modules_to_save="head")
    target = WithHead()  # a fresh head, the same base
    lotra.load_adapter(target, directory)
    assert torch.equal(target.head.weight, source.head.weight)


def test_an_adapter_file_without_fingerprint_loads_with_one_warning(tmp_path):
    directory = saved(tmp_path)

    def make_old(config):
        del config["base_fingerprint"], config["weights_sha256"]

    rewrite_config(directory, make_old)
    with pytest.warns(UserWarning, match="cannot be checked") as caught:
        lotra.load_adapter(base_net(seed=1), directory)
    assert len(caught) == 1 and "\n" not in str(caught[0].message)


# --- atomic files ------------------------------------------------------------------------


def test_a_failed_save_leaves_the_previous_adapter_whole_and_no_temporary(tmp_path, monkeypatch):
    directory = saved(tmp_path)
    before = {p.name: p.read_bytes() for p in directory.iterdir()}

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("lightning_kan.atomic.os.fsync", broken_fsync)
    with pytest.raises(OSError, match="No space left"):
        lotra.save_adapter(adapted(adapter_seed=2), directory)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == before
    lotra.load_adapter(base_net(), directory)


def test_save_removes_temporaries_a_killed_save_left(tmp_path):
    directory = saved(tmp_path)
    stale = directory / ".adapter.pt.x1y2z3.partial"
    stale.write_bytes(b"half a file")
    saved(tmp_path)
    assert sorted(p.name for p in directory.iterdir()) == ["adapter.pt", "adapter_config.json"]


def test_weights_from_another_save_are_detected(tmp_path):
    first = saved(tmp_path, adapted(adapter_seed=1), "first")
    second = saved(tmp_path, adapted(adapter_seed=2), "second")
    shutil.copy(first / "adapter.pt", second / "adapter.pt")
    with pytest.raises(ValueError, match=r"adapter\.pt is not a usable.*SHA-256"):
        lotra.load_adapter(base_net(), second)


# --- bad adapter files -------------------------------------------------------------------


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _drop_hash(directory: Path) -> None:
    rewrite_config(directory, lambda c: c.pop("weights_sha256"))


@pytest.mark.parametrize(
    ("damage", "error", "message"),
    [
        (lambda d: _truncate(d / "adapter_config.json"), ValueError, "not complete JSON"),
        (lambda d: (d / "adapter_config.json").write_text("[1, 2]"), ValueError, "format is"),
        (lambda d: rewrite_config(d, lambda c: c.pop("tensors")), ValueError, "'tensors'"),
        (
            lambda d: rewrite_config(d, lambda c: c["tensors"]["layers.0.weight"].pop("ranks")),
            ValueError,
            r"tensors\['layers\.0\.weight'\]",
        ),
        (lambda d: rewrite_config(d, lambda c: c.update(format="x/9")), ValueError, "'x/9'"),
        (lambda d: (d / "adapter.pt").unlink(), FileNotFoundError, "no adapter.pt"),
        (lambda d: _truncate(d / "adapter.pt"), ValueError, "SHA-256"),
        (
            lambda d: (_drop_hash(d), _truncate(d / "adapter.pt")),
            ValueError,
            "not a complete tensor file",
        ),
        (
            lambda d: (_drop_hash(d), (d / "adapter.pt").write_bytes(b"")),
            ValueError,
            "not a complete tensor file",
        ),
        (
            lambda d: (
                _drop_hash(d),
                torch.save({"layers.0.weight.core": torch.ones(1)}, d / "adapter.pt"),
            ),
            ValueError,
            r"tensors under 'layers\.0\.weight\.' do not fit",
        ),
    ],
)
def test_a_damaged_adapter_file_is_named(tmp_path, damage, error, message):
    directory = saved(tmp_path)
    damage(directory)
    net = base_net()
    with pytest.raises(error, match=message) as caught:
        lotra.load_adapter(net, directory)
    assert str(directory) in str(caught.value)
    assert not lotra.adapted_tensors(net)


def test_missing_and_misplaced_adapter_folders_are_named(tmp_path):
    directory = saved(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"nowhere'.*does not exist"):
        lotra.load_adapter(base_net(), tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"that is a file.*pass '.*adapter'"):
        lotra.load_adapter(base_net(), directory / "adapter_config.json")


def test_an_adapter_that_fits_only_partly_leaves_the_model_unchanged(tmp_path):
    directory = saved(tmp_path)
    other = base_net(widths=(2, 8, 8, 2))  # layers 0 and 1 fit, layer 2 does not
    with pytest.raises(ValueError, match=r"'layers\.2\.weight' was trained on a tensor of shape"):
        lotra.load_adapter(other, directory)
    assert not lotra.adapted_tensors(other)


def test_loading_under_a_taken_name_says_how_to_rename(tmp_path):
    directory = saved(tmp_path)
    net = base_net()
    lotra.load_adapter(net, directory)
    with pytest.raises(ValueError, match=r"already has an adapter named 'default'.*name="):
        lotra.load_adapter(net, directory)
    assert lotra.load_adapter(net, directory, name="copy") == "copy"


# --- bad arguments -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ranks": 2.5}, r"ranks=2\.5 is not a valid rank .*got a float"),
        ({"ranks": [2.5, 2, 2]}, r"ranks=\[2\.5, 2, 2\].*entry 2\.5 \(float\) is not an int"),
        ({"ranks": True}, r"ranks=True is not a valid rank"),
        ({"ranks": [True, 2, 2]}, r"entry True \(bool\)"),
        ({"ranks": "4"}, r"ranks='4' is not a valid rank .*got a str"),
        ({"ranks": None}, r"ranks=None is not a valid rank"),
        ({"ranks": []}, r"ranks=\[\] is not a valid rank"),
        ({"ranks": 0}, r"ranks=0 holds a rank below 1"),
        ({"ranks": -2}, r"ranks=-2 holds a rank below 1"),
        ({"ranks": [2, 0, 2]}, r"ranks=\(2, 0, 2\) holds a rank below 1"),
        ({"ranks": [2, 2, 2, 2, 2]}, r"expected an int or 3 ranks.*got 5"),
        ({"ranks": {}}, r"ranks=\{\} is an empty dict"),
        ({"ranks": {"layers.(0": 2}}, r"ranks key: 'layers\.\(0' is not a valid regular expr"),
        ({"ranks": {1: 2}}, r"ranks key must be a regex string .*got 1 \(int\)"),
        ({"ranks": {".*": 2.5}}, r"ranks\['\.\*'\]=2\.5 is not a valid rank"),
        ({"target_modules": "layers.(0"}, r"target_modules: 'layers\.\(0' is not a valid"),
        ({"target_modules": "[a-"}, r"target_modules: '\[a-' is not a valid regular"),
        ({"exclude_modules": "*"}, r"exclude_modules: '\*' is not a valid regular"),
        ({"target_modules": 5}, r"target_modules=5 is not a module selector"),
        ({"target_modules": [5]}, r"target_modules=\[5\] is not a module selector"),
        ({"target_modules": ["layers.0", "layer.1"]}, r"entry 'layer\.1' matches no module"),
        ({"exclude_modules": ["layers.7"]}, r"exclude_modules entry 'layers\.7' matches no"),
        ({"exclude_modules": r"layer\.1"}, r"exclude_modules entry 'layer\\\\.1' matches no"),
        ({"target_modules": [nn.Conv2d]}, r"entry <class .*Conv2d'> matches no module"),
        ({"target_modules": r"decoder\..*"}, r"found no module to adapt"),
        ({"name": ""}, r"name='' cannot name an adapter"),
        ({"name": "a.b"}, r"name='a\.b' cannot name an adapter"),
        ({"name": None}, r"name=None cannot name an adapter"),
        ({"parameter_name": None}, r"parameter_name must be .* got None"),
    ],
)
def test_bad_add_adapter_arguments_are_one_clear_paragraph(kwargs, message):
    net = base_net()
    with pytest.raises(ValueError, match=message) as caught:
        lotra.add_adapter(net, **{"ranks": RANKS, **kwargs})
    assert "\n" not in str(caught.value)
    assert not lotra.adapted_tensors(net)


@pytest.mark.parametrize(
    "call",
    [
        lambda m: lotra.add_adapter(m, ranks=1),
        lambda m: lotra.set_active_adapter(m, "default"),
        lambda m: lotra.parameter_report(m),
        lambda m: lotra.merge_adapter(m),
        lambda m: lotra.save_adapter(m, "unused"),
        lambda m: lotra.load_adapter(m, "unused"),
    ],
)
def test_the_api_on_something_that_is_no_module(call):
    with pytest.raises(ValueError, match=r"works on a torch\.nn\.Module .* got a dict"):
        call({"weight": torch.ones(2, 2, 2)})


def test_an_adapter_folder_that_is_no_path(tmp_path):
    net = adapted()
    with pytest.raises(ValueError, match=r"save_adapter directory=None is not a folder path"):
        lotra.save_adapter(net, None)
    with pytest.raises(ValueError, match=r"load_adapter directory=3 is not a folder path"):
        lotra.load_adapter(net, 3)


def test_tucker_delta_with_ranks_that_do_not_fit_its_shape():
    with pytest.raises(ValueError, match=r"shape=\(3, -4, 2\) is not a coefficient tensor"):
        lotra.TuckerDelta((3, -4, 2), 1)
    with pytest.raises(ValueError, match=r"shape=\(3, 4\) is not a coefficient tensor"):
        lotra.TuckerDelta((3, 4), 1)
    with pytest.raises(ValueError, match=r"TuckerDelta\(shape=\(16, 400, 6\)\).*got 2"):
        lotra.TuckerDelta((16, 400, 6), (4, 4))
    with pytest.raises(ValueError, match=r"rank 7 for the 'basis' mode .* 1\.\.6"):
        lotra.TuckerDelta((16, 400, 6), (4, 4, 7))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": -1.0}, r"lr=-1\.0 is not a learning rate"),
        ({"lr": 0.0}, r"lr=0\.0 is not a learning rate"),
        ({"lr": math.nan}, r"lr=nan is not a learning rate"),
        ({"lr": math.inf}, r"lr=inf is not a learning rate"),
        ({"lr": "1e-3"}, r"lr='1e-3' is not a learning rate"),
        ({"lr": True}, r"lr=True is not a learning rate"),
        ({"lr_multipliers": {"in": math.inf}}, r"lr_multipliers\['in'\]=inf is not a rate"),
        ({"lr_multipliers": {"in": -2.0}}, r"lr_multipliers\['in'\]=-2\.0 is not a rate"),
        ({"lr_multipliers": {"core": math.nan}}, r"lr_multipliers\['core'\]=nan"),
        ({"lr_multipliers": [("in", 2.0)]}, r"lr_multipliers=\[\('in', 2\.0\)\] must be a dict"),
        ({"ranks": 2.5}, r"ranks=2\.5 is not a valid rank"),
        ({"ranks": {"(": 2}}, r"ranks key: '\(' is not a valid regular expression"),
        ({"target_modules": "("}, r"target_modules: '\(' is not a valid regular"),
        ({"exclude_modules": "+"}, r"exclude_modules: '\+' is not a valid regular"),
        ({"modules_to_save": "[x"}, r"modules_to_save: '\[x' is not a valid regular"),
        ({"adapter_name": "my.adapter"}, r"adapter_name='my\.adapter' cannot name"),
    ],
)
def test_the_callback_names_bad_arguments_when_built(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lotra.LoTRA(**kwargs)


def test_component_lr_refuses_an_unknown_component_and_a_bad_width():
    with pytest.raises(ValueError, match=r"component='U2' is unknown"):
        lotra.component_lr(1e-3, "U2", 4)  # silently lr before
    with pytest.raises(ValueError, match=r"in_features=0 must be"):
        lotra.component_lr(1e-3, "in", 0)
    with pytest.raises(ValueError, match=r"lr=inf is not a learning rate"):
        lotra.lotra_param_groups(adapted(), math.inf)


def test_a_set_of_names_still_selects():
    adapted_keys = [
        t.key for t in lotra.add_adapter(base_net(), ranks=2, target_modules={"layers.0"})
    ]
    assert adapted_keys == ["layers.0.weight"]


def test_param_groups_take_one_module_to_save():
    net = WithHead()
    lotra.add_adapter(net, ranks={r"net\.layers\.2": [1, 2, 2], ".*": 2})
    groups = lotra.lotra_param_groups(net, 1e-3, modules_to_save=net.head)  # not in a list
    assert groups[-1]["name"] == "lotra/modules_to_save" and len(groups[-1]["params"]) == 2


def test_bad_save_adapter_arguments_are_named(tmp_path):
    net = adapted()
    with pytest.raises(ValueError, match=r"modules_to_save entry 'head' is not a submodule"):
        lotra.save_adapter(net, tmp_path / "a", modules_to_save=["head"])
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"directory=.*file' is a file"):
        lotra.save_adapter(net, tmp_path / "file")
    with pytest.raises(KeyError, match=r"no adapter named 'other'; it has \['default'\]"):
        lotra.save_adapter(net, tmp_path / "a", name="other")
    lotra.set_active_adapter(net, None)
    with pytest.raises(ValueError, match=r"none active \(adapters: \['default'\]\)"):
        lotra.save_adapter(net, tmp_path / "a")
    assert not (tmp_path / "a").exists()  # nothing written by a refused save


def test_plot_spectra_of_nothing_and_checkpoint_helpers_without_state_dict():
    with pytest.raises(ValueError, match=r"plot_spectra\(spectra=\{\}\) has nothing to draw"):
        lotra.plot_spectra({})
    with pytest.raises(ValueError, match=r"checkpoint_to_plain expects .*'state_dict'"):
        lotra.checkpoint_to_plain(adapted(), {"epoch": 1})
    with pytest.raises(ValueError, match=r"checkpoint_from_plain expects .*'state_dict'"):
        lotra.checkpoint_from_plain(adapted(), {"epoch": 1})


def test_a_truncated_pretrained_checkpoint_is_named(tmp_path):
    from lightning.pytorch import LightningModule, Trainer

    class Module(LightningModule):
        def __init__(self):
            super().__init__()
            self.net = KANLinear(2, 2, **CHEBYSHEV)

    path = tmp_path / "pretrained.ckpt"
    torch.save({"state_dict": Module().state_dict()}, path)
    _truncate(path)
    callback = lotra.LoTRA(ranks=1, pretrained_checkpoint=str(path))
    trainer = Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(ValueError, match=r"pretrained\.ckpt' is not a complete checkpoint"):
        callback.setup(trainer, Module(), "fit")


def test_plot_spectra_without_matplotlib_names_the_fix(no_matplotlib):
    with pytest.raises(ImportError, match="pip install matplotlib"):
        lotra.plot_spectra({"layers.0": {"out": torch.ones(2)}})
