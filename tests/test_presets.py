"""The SlimKAN/MetaKAN presets: configs still see (and check) every option of the parent.

``SlimKAN``/``SlimConvKAN`` name only their own options and forward the rest to
``KAN``/``ConvKAN`` with ``**kwargs``; jsonargparse follows that into the parent, and
the CLI's size filling and did-you-mean use the same resolution. ``MetaKAN`` and
``MetaConvKAN`` list theirs explicitly (they read the parent's before its constructor).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
import yaml

from lightning_kan.cli import build_cli, main
from lightning_kan.layers.meta import Generated, MetaLearner
from lightning_kan.layers.slim import Tucker
from lightning_kan.nets import KAN, ConvKAN, MetaConvKAN, MetaKAN, SlimConvKAN, SlimKAN

ROOT = Path(__file__).resolve().parents[1]
NET = "model.init_args.net.init_args"
#: preset name -> (preset, parent)
PRESETS = {
    "SlimKAN": (SlimKAN, KAN),
    "SlimConvKAN": (SlimConvKAN, ConvKAN),
    "MetaKAN": (MetaKAN, KAN),
    "MetaConvKAN": (MetaConvKAN, ConvKAN),
}
#: parent options a preset does not offer (it sets them, or they do not apply)
NOT_OFFERED = {"coefficients", "coefficients_kwargs"}
# MetaKAN sizes its shared meta-learners per layer before KAN is built and offers no
# multiplication nodes (mult_nodes is refused as an unknown argument)
NOT_OFFERED_BY = {"MetaKAN": {"spline_init_scale", "mult_nodes"}}


def _preset_configs() -> list[tuple[str, Path]]:
    """Every shipped config whose network is a preset, with the preset's name."""
    found = []
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        net = yaml.safe_load(path.read_text())["model"]["init_args"]["net"]
        name = net["class_path"].rsplit(".", 1)[-1]
        if name in PRESETS:
            found.append((name, path))
    return found


CONFIGS = _preset_configs()
ONE_CONFIG_EACH = list({name: (name, path) for name, path in CONFIGS}.values())


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def _defaults(function) -> dict:
    return {
        name: parameter.default
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.kind is not inspect.Parameter.VAR_KEYWORD
    }


def _yaml_value(value):
    return list(value) if isinstance(value, tuple) else value


def _error(capsys, *args: str) -> str:
    """The CLI's one error paragraph (exit code 2, no traceback)."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if line.startswith("lightning_kan: error:")]
    assert exit_info.value.code == 2 and len(errors) == 1 and "Traceback" not in stderr, stderr
    return errors[0]


def test_every_preset_has_a_shipped_config():
    assert {name for name, _ in CONFIGS} == set(PRESETS)


@pytest.mark.parametrize(("preset", "config"), CONFIGS, ids=lambda v: getattr(v, "name", v))
def test_print_config_lists_every_parent_option_with_its_default(capsys, preset, config):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)["model"]["init_args"]["net"]
    given = yaml.safe_load(config.read_text())["model"]["init_args"]["net"]["init_args"]
    cls, parent = PRESETS[preset]
    expected = {
        name: default
        for name, default in _defaults(parent).items()
        if name not in NOT_OFFERED | NOT_OFFERED_BY.get(preset, set())
    }
    expected |= _defaults(cls)  # its own options (and defaults), and the parent's it names
    expected = {name: _yaml_value(default) for name, default in expected.items()} | given
    assert printed["init_args"] == expected
    assert {"basis", "norm", "base_activation"} <= set(printed["init_args"])


@pytest.mark.parametrize(("preset", "config"), ONE_CONFIG_EACH, ids=lambda v: getattr(v, "name", v))
def test_an_unknown_option_on_the_command_line_names_the_parent_option(capsys, preset, config):
    error = _error(capsys, "fit", "--config", str(config), f"--{NET}.nrom=batch")
    assert f"{NET}.nrom='batch': unknown option; did you mean {NET}.norm?" in error


@pytest.mark.parametrize(("preset", "config"), ONE_CONFIG_EACH, ids=lambda v: getattr(v, "name", v))
def test_an_unknown_option_in_a_file_names_the_parent_option(capsys, tmp_path, preset, config):
    # the parser cannot skip a bad key in a file: the CLI lists the preset's options
    # itself, and must see those forwarded to the parent (not only ``widths, ranks``)
    data = yaml.safe_load(config.read_text())
    data["model"]["init_args"]["net"]["init_args"]["base_activaton"] = "relu"
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(data))
    error = _error(capsys, "fit", "--config", str(path))
    assert f"{NET}.base_activaton: unknown option; did you mean {NET}.base_activation?" in error


@pytest.mark.parametrize(("preset", "config"), ONE_CONFIG_EACH, ids=lambda v: getattr(v, "name", v))
@pytest.mark.parametrize(
    ("option", "reason"),
    [
        ("norm=sideways", "Expected a typing.Literal"),
        ("compiled=maybe", "expected a value of type bool"),
    ],
)
def test_a_badly_typed_parent_option_is_refused(capsys, preset, config, option, reason):
    error = _error(capsys, "fit", "--config", str(config), f"--{NET}.{option}")
    name, value = option.split("=")
    assert f"{NET}.{name}='{value}': {reason}" in error


@pytest.mark.parametrize("preset", ["SlimKAN", "SlimConvKAN"])
def test_the_preset_fixes_its_coefficient_family(capsys, preset):
    config = dict(ONE_CONFIG_EACH)[preset]
    error = _error(capsys, "fit", "--config", str(config), f"--{NET}.coefficients=dense")
    assert f"{NET}.coefficients='dense': unknown option" in error
    with pytest.raises(TypeError, match="coefficients"):
        PRESETS[preset][0]([2, 3, 1], coefficients="dense")


@pytest.mark.parametrize(
    ("config", "sizes"),
    [("digits_slimkan.yaml", [64, 32, 10]), ("feynman_slimkan.yaml", None)],
)
def test_forwarded_size_options_are_filled_in_from_the_data(config, sizes):
    """``in_features``/``out_features`` reach SlimKAN through ``**kwargs``."""
    cli = build_cli(["--config", str(ROOT / "configs" / config)], run=False)
    net, data = cli.model.net, cli.datamodule
    assert isinstance(net, SlimKAN)
    assert net.widths[0] == data.num_features and net.widths[-1] == data.num_outputs
    if sizes is not None:
        assert net.widths == sizes


def _same(preset: torch.nn.Module, parent: torch.nn.Module, x: torch.Tensor) -> None:
    assert isinstance(preset, type(parent)) and type(preset) is not type(parent)
    assert preset.num_parameters() == parent.num_parameters()
    preset.eval(), parent.eval()
    torch.testing.assert_close(preset(x), parent(x), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("ranks", "coefficients"),
    [
        (2, lambda: Tucker(2)),
        ((2, 3, 2), lambda: Tucker((2, 3, 2))),
        ([2, (2, 3, 2)], lambda: [Tucker(2), Tucker((2, 3, 2))]),
    ],
    ids=["int", "triple", "per-layer"],
)
def test_slimkan_is_kan_with_tucker_coefficients(ranks, coefficients):
    options = {"basis_kwargs": {"grid_size": 4}, "norm": "layer", "base_activation": "gelu"}
    torch.manual_seed(0)
    slim = SlimKAN([5], ranks, in_features=3, out_features=2, **options)
    torch.manual_seed(0)
    kan = KAN([3, 5, 2], coefficients=coefficients(), **options)
    _same(slim, kan, torch.rand(7, 3) * 2 - 1)


def test_slimkan_by_name_and_its_per_layer_ranks_error():
    torch.manual_seed(0)
    slim = SlimKAN([3, 4, 2], ranks=3)
    torch.manual_seed(0)
    kan = KAN([3, 4, 2], coefficients="tucker", coefficients_kwargs={"ranks": 3})
    _same(slim, kan, torch.rand(5, 3))
    with pytest.raises(ValueError, match="ranks lists 3 entries but the network has 2 layers"):
        SlimKAN([4], ranks=[2, 3, (2, 2, 2)], in_features=3, out_features=2)


def test_slimconvkan_is_convkan_with_tucker_coefficients():
    options = {"kernel_size": 3, "norm": "group", "pool": "avg", "dropout": 0.1}
    torch.manual_seed(0)
    slim = SlimConvKAN(1, 3, (2, 4), 2, **options)  # positional order kept
    torch.manual_seed(0)
    conv = ConvKAN(1, 3, (2, 4), coefficients=Tucker(2), **options)
    _same(slim, conv, torch.rand(2, 1, 6, 6))


def test_metakan_is_kan_with_generated_coefficients():
    torch.manual_seed(0)
    meta = MetaKAN([3, 4, 2], embed_dim=2, hidden_dim=5, norm="layer")
    torch.manual_seed(0)
    learner = MetaLearner(meta.layers[0].basis.num_functions + 1, 2, 5)
    kan = KAN([3, 4, 2], bias=False, norm="layer", coefficients=Generated(learner))
    _same(meta, kan, torch.rand(5, 3))


def test_metaconvkan_is_convkan_with_generated_coefficients():
    torch.manual_seed(0)
    meta = MetaConvKAN(1, 3, (2, 4), hidden_dim=4, norm=None)
    torch.manual_seed(0)
    learner = MetaLearner(meta.head.basis.num_functions + 1, 1, 4)
    conv = ConvKAN(1, 3, (2, 4), norm=None, coefficients=Generated(learner))
    _same(meta, conv, torch.rand(2, 1, 6, 6))
