"""The capability protocols: each one's positive and negative case, and the message."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from lightning_kan.layers import KANLinear
from lightning_kan.nets import KAN, MLP, MetaKAN, SlimKAN
from lightning_kan.protocols import (
    CapabilityError,
    HasNet,
    SupportsEdgeFunctions,
    SupportsGridUpdate,
    SupportsParamGroups,
    SupportsRegularization,
    capability_gaps,
    require,
    require_net,
)
from lightning_kan.tasks import RegressionTask

ROOT = Path(__file__).resolve().parents[1]


def mlp() -> MLP:
    return MLP([4], in_features=2, out_features=1)


class _Identity(nn.Module):
    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight


def test_has_net():
    task = RegressionTask(KAN([2, 3, 1]))
    assert isinstance(task, HasNet) and capability_gaps(task, HasNet) == []
    assert require_net(task, "MyCallback") is task.net
    plain = L.LightningModule()
    assert not isinstance(plain, HasNet)
    with pytest.raises(CapabilityError) as error:
        require_net(plain, "MyCallback")
    message = str(error.value)
    assert "MyCallback needs the module's network as the attribute `net`" in message
    assert "(LightningModule) `net` is missing" in message
    assert "Store the network as self.net" in message and "\n" not in message


@pytest.mark.parametrize("net", [KAN([2, 3, 1]), KANLinear(2, 3)], ids=["KAN", "KANLinear"])
def test_grid_update_supported_by_dense_bspline(net):
    assert isinstance(net, SupportsGridUpdate)
    assert capability_gaps(net, SupportsGridUpdate) == []


@pytest.mark.parametrize(
    ("make", "gap"),
    [
        (lambda: KAN([2, 3, 1], basis="chebyshev"), "uses ChebyshevBasis, which has no grid"),
        (lambda: KAN([2, 3, 1], basis="rbf"), "uses GaussianRBFBasis, which has no grid"),
        (lambda: SlimKAN([2, 3, 1]), "computes its coefficients from other parameters"),
        (lambda: MetaKAN([2, 3, 1]), "computes its coefficients from other parameters"),
        (mlp, "`refine_grid()`, `update_grid()` are missing"),
    ],
    ids=["chebyshev", "rbf", "slim", "meta", "mlp"],
)
def test_grid_update_gaps(make, gap):
    """A Chebyshev/RBF, Slim or Meta KAN has update_grid, but nothing it can move."""
    gaps = capability_gaps(make(), SupportsGridUpdate)
    assert gaps and all(gap in g for g in gaps), gaps


def test_grid_update_gap_under_a_weight_parametrisation():
    """LoTRA's adapters parametrise `weight`: a refit would change the tensor under them."""
    net = KAN([2, 3, 1])
    parametrize.register_parametrization(net.layers[1], "weight", _Identity())
    (gap,) = capability_gaps(net, SupportsGridUpdate)
    assert re.match(r"`layers.1` \(\w*KANLinear\) carries a parametrisation of weight", gap)
    assert "merge_adapter" in gap


def test_edge_functions():
    for net in (KAN([2, 3, 1]), KANLinear(2, 3), SlimKAN([2, 3, 1]), MetaKAN([2, 3, 1])):
        assert capability_gaps(net, SupportsEdgeFunctions) == [], type(net).__name__
    assert isinstance(KANLinear(2, 3), SupportsEdgeFunctions)
    assert not isinstance(nn.Linear(2, 3), SupportsEdgeFunctions)
    assert capability_gaps(mlp(), SupportsEdgeFunctions)[0] == (
        "`layers[0]` (Linear) has no edge_activations"
    )
    assert capability_gaps(nn.Conv2d(1, 2, 3), SupportsEdgeFunctions) == [
        "neither it nor a `layers` list has edge_activations"
    ]


def test_regularization_and_param_groups():
    assert isinstance(KAN([2, 3, 1]), SupportsRegularization)
    assert not isinstance(mlp(), SupportsRegularization)
    assert capability_gaps(mlp(), SupportsRegularization) == ["`regularization()` is missing"]
    assert isinstance(MetaKAN([2, 3, 1]), SupportsParamGroups)
    assert not isinstance(KAN([2, 3, 1]), SupportsParamGroups)
    assert capability_gaps(KAN([2, 3, 1]), SupportsParamGroups) == ["`param_groups()` is missing"]


def test_a_non_callable_member_is_a_gap():
    net = mlp()
    net.regularization = 0.5  # an attribute of that name, not a method
    assert capability_gaps(net, SupportsRegularization) == ["`regularization()` is missing"]


def test_require_message_names_caller_class_gap_and_fix():
    net = KAN([2, 3, 3, 3, 1], basis="chebyshev")
    with pytest.raises(CapabilityError) as error:
        require(
            net,
            SupportsGridUpdate,
            caller="MyCallback",
            needs="grids that move",
            where="`Task.net`",
            fix="Use basis='bspline'.",
        )
    message = str(error.value)
    assert message.startswith(
        "MyCallback needs grids that move (SupportsGridUpdate); in `Task.net` (KAN) "
    )
    assert message.count("uses ChebyshevBasis") == 3 and "(and 1 more alike)" in message
    assert message.endswith("Use basis='bspline'.")
    assert isinstance(error.value, TypeError) and isinstance(error.value, ValueError)


def test_no_docstring_cites_a_missing_document():
    """Every ``*.md`` file a library docstring names exists in the repository."""
    cited = {
        (path.relative_to(ROOT), name)
        for path in (ROOT / "lightning_kan").rglob("*.py")
        for name in re.findall(r"[\w/.-]+\.md\b", path.read_text())
    }
    missing = [(str(path), name) for path, name in cited if not (ROOT / name).exists()]
    assert not missing, missing


def _documented_names() -> list[str]:
    text = (ROOT / "docs/architecture.md").read_text()
    return sorted(set(re.findall(r"`(lightning_kan(?:\.\w+)+)", text)))


def _resolve(dotted: str) -> object:
    """Import the longest module prefix of ``dotted``, then walk the attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            target = getattr(target, attribute)
        return target
    raise ModuleNotFoundError(dotted)


def test_architecture_doc_names_exist():
    """Every dotted ``lightning_kan.`` name docs/architecture.md lists imports."""
    names = _documented_names()
    assert len(names) > 20
    broken = []
    for name in names:
        try:
            _resolve(name)
        except (ImportError, AttributeError) as error:
            broken.append(f"{name}: {error}")
    assert not broken, broken


#: what each package may import (docs/architecture.md, section 1); cli may import all
ALLOWED_IMPORTS = {
    "atomic": set(),
    "utils": set(),
    "cpu": set(),
    "native": set(),
    "bases": {"native"},
    "ops": set(),
    "protocols": {"bases"},
    "layers": {"bases", "native", "ops"},
    "nets": {"bases", "layers", "ops", "utils"},
    "plotting": {"atomic", "layers", "protocols"},
    "callbacks": {"atomic", "bases", "interpret", "layers", "plotting", "protocols"},
    "data": set(),
    "pde": {"data"},
    "lotra": {"atomic", "callbacks", "ops", "plotting", "utils"},
    "tasks": {"bases", "callbacks", "layers", "pde", "protocols", "utils"},
    "interpret": {"atomic", "bases", "layers", "nets"},
}
#: compatibility re-exports of PINNTask at its old address (see the document)
COMPAT_IMPORTS = {
    ("lightning_kan/pde/__init__.py", "tasks"),
    ("lightning_kan/pde/task.py", "tasks"),
}


def test_nothing_imports_upward():
    """The import rule docs/architecture.md states, checked on every library module."""
    import ast

    wrong = []
    for path in sorted((ROOT / "lightning_kan").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        package = path.relative_to(ROOT / "lightning_kan").parts[0].removesuffix(".py")
        if package in ("cli", "lightning_cli", "__init__"):
            continue
        if package not in ALLOWED_IMPORTS:
            wrong.append(f"{relative}: package {package!r} is not in the document's tables")
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            for module in modules:
                parts = module.split(".")
                if parts[0] != "lightning_kan" or len(parts) < 2 or parts[1] == package:
                    continue
                target = parts[1]
                if (
                    target not in ALLOWED_IMPORTS[package]
                    and (relative, target) not in COMPAT_IMPORTS
                ):
                    wrong.append(f"{relative} imports lightning_kan.{target}")
    assert not wrong, wrong


@pytest.mark.parametrize("weight", [-1.0, float("nan"), float("inf"), True, "0.1"])
def test_task_regularization_weight_must_be_a_finite_number(weight):
    from lightning_kan.tasks import RegressionTask

    with pytest.raises(ValueError, match=r"regularization must be >= 0, got .*0 disables it"):
        RegressionTask(KAN([2, 3, 1]), regularization=weight)


def test_task_regularization_needs_the_protocol_not_an_attribute():
    from lightning_kan.nets import MLP
    from lightning_kan.tasks import RegressionTask

    net = MLP([2, 3, 1])
    with pytest.raises(CapabilityError, match=r"SupportsRegularization.*MLP"):
        RegressionTask(net, regularization=0.1)
    net.regularization = 0.5  # an attribute that is not a method does not count
    with pytest.raises(CapabilityError, match="SupportsRegularization"):
        RegressionTask(net, regularization=0.1)
    RegressionTask(KAN([2, 3, 1]), regularization=0.1)
