"""KAN networks: second derivatives, regularisation, and a real fit."""

import pytest
import torch
from conftest import BASES

from lightning_kan import KAN


@pytest.mark.parametrize("name", ["bspline", "chebyshev", "rbf", "gram"])
def test_second_derivatives_match_finite_differences(name):
    net = KAN([2, 4, 1], basis=name, basis_kwargs=BASES[name]).double()
    x = (torch.rand(6, 2, dtype=torch.float64) * 1.4 - 0.7).requires_grad_(True)
    (grad,) = torch.autograd.grad(net(x).sum(), x, create_graph=True)
    laplacian = sum(
        torch.autograd.grad(grad[:, d].sum(), x, retain_graph=True)[0][:, d] for d in range(2)
    )
    step = 1e-4
    with torch.no_grad():
        centre = net(x)
        fd = sum(
            (net(x + step * e) - 2 * centre + net(x - step * e)) / step**2
            for e in torch.eye(2, dtype=torch.float64)
        )
    torch.testing.assert_close(laplacian, fd.squeeze(-1), atol=1e-4, rtol=1e-4)


def test_regularization_matches_pykan_definition():
    net = KAN([3, 2, 2])
    x = torch.randn(64, 3)
    total = torch.zeros(())
    hidden = x
    for layer in net.layers:
        edges = layer.edge_activations(hidden)  # (N, O, I)
        magnitudes = edges.abs().mean(0)
        p = magnitudes / magnitudes.sum()
        entropy = -(p * torch.log(p)).sum()
        total = total + 0.5 * magnitudes.sum() + 3.0 * entropy
        hidden = layer(hidden)
    torch.testing.assert_close(
        net.regularization(x, l1=0.5, entropy=3.0), total, rtol=1e-5, atol=1e-6
    )
    reg = net.regularization(x)
    reg.backward()
    assert all(
        layer.weight.grad is not None and layer.base_weight.grad is not None for layer in net.layers
    )


def test_edge_activations_sum_to_layer_output():
    net = KAN([3, 4])
    layer = net.layers[0]
    x = torch.randn(10, 3)
    torch.testing.assert_close(layer.edge_activations(x).sum(-1) + layer.bias, layer(x))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"widths": [3]}, "at least an input and an output width"),
        ({"widths": [3, 0, 1]}, r"widths=\[3, 0, 1\] holds 0 at position 1"),
        ({"widths": [3, 1], "norm": "group"}, "norm must be 'layer', 'batch' or None"),
        ({"widths": [3, 1], "basis": "fourier"}, "unknown basis 'fourier'"),
    ],
)
def test_bad_network_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        KAN(**kwargs)


def test_kan_fits_a_smooth_2d_function():
    """pykan's toy example f(x, y) = exp(sin(pi x) + y^2): test MSE < 1e-3, plain PyTorch."""
    torch.manual_seed(0)

    def target(x):
        return torch.exp(torch.sin(torch.pi * x[:, :1]) + x[:, 1:] ** 2)

    train_x = torch.rand(1000, 2) * 2 - 1
    test_x = torch.rand(1000, 2) * 2 - 1
    train_y, test_y = target(train_x), target(test_x)
    net = KAN([2, 5, 1], basis_kwargs={"grid_size": 5})
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 1500)
    for step in range(1500):
        if step == 500:
            net.refine_grid(10)  # pykan's grid extension: a finer grid, same function
            optimizer = torch.optim.Adam(net.parameters(), lr=5e-3)
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 1000)
        loss = torch.nn.functional.mse_loss(net(train_x), train_y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    with torch.no_grad():
        test_mse = torch.nn.functional.mse_loss(net(test_x), test_y).item()
    assert test_mse < 1e-3, test_mse
