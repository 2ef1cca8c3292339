"""Agreement of the new basis families with the upstream layers they come from.

    python benchmarks/upstream_bases.py --upstream DIR

``DIR`` holds checkouts of the upstream repositories (a missing one skips its rows):
``torch-conv-kan`` (IvanDrokin: WavKAN, KAJN, KABN, ReLU-KAN; needs ``einops``),
``FourierKAN`` (GistNoesis) and ``fast-kan`` (ZiyaoLi). Their code is imported from
there, never copied. Each row builds the upstream layer in float64 with random weights,
loads them into the matching lightning_kan layer through the coefficient protocol and
prints the largest output difference on random inputs (round-off where the maths is the
same). KAGN's Gram layer is not compared: its ``beta`` is parametrised differently (see
``GramBasis``). KABN's ``bernstein_poly`` returns all ones (its de Casteljau loop starts
from all-one control points), so its layer's edge functions are constants and its row
differs: the script checks that and says so below the table.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lightning_kan import KAN, KANLinear

Pair = tuple[torch.Tensor, torch.Tensor]
IN, OUT, N = 6, 4, 256


def _inputs() -> torch.Tensor:
    return torch.randn(N, IN) * 1.5


def wavkan(layers, wavelet: str) -> Pair:
    """WavKAN with one output: its per-edge scale and translation are per input."""
    theirs = layers.WavKANLayer(IN, 1, wavelet_type=wavelet)
    with torch.no_grad():
        theirs.scale.uniform_(0.5, 2.0)
        theirs.translation.normal_()
    options = {"wavelet": wavelet, "num_wavelets": 1, "trainable": True}
    ours = KANLinear(IN, 1, basis="wavelet", basis_kwargs=options, bias=False)
    sign = -1.0 if wavelet == "mexican_hat" else 1.0  # WavKAN writes (t^2 - 1) e^(-t^2/2)
    with torch.no_grad():
        ours.basis.translation.copy_(theirs.translation.T)
        ours.basis.log_scale.copy_(theirs.scale.T.log())
        ours.weight.copy_(sign * theirs.wavelet_weights[..., None])
        ours.base_weight.copy_(theirs.weight1)
    x = _inputs()  # WavKAN's forward ends in a BatchNorm: compare what enters it
    return ours(x), theirs.wavelet_transform(x) + F.linear(F.silu(x), theirs.weight1)


def polynomial(layers, name: str) -> Pair:
    """KAJN / KABN: ``silu(LayerNorm(poly @ C + base))``; the LayerNorm is removed."""
    if name == "jacobi":
        theirs = layers.JacobiKANLayer(IN, OUT, 5, a=0.5, b=1.5).double()
        options, coefficients = {"degree": 5, "alpha": 0.5, "beta": 1.5}, theirs.jacobi_coeffs
    else:
        theirs = layers.BernsteinKANLayer(IN, OUT, 5).double()
        options, coefficients = {"degree": 5}, theirs.bernstein_coeffs
    theirs.norm = nn.Identity()
    ours = KANLinear(IN, OUT, basis=name, basis_kwargs=options, bias=False)
    with torch.no_grad():
        ours.weight.copy_(coefficients.permute(1, 0, 2))
        ours.base_weight.copy_(theirs.base_weights)
    x = _inputs()
    return F.silu(ours(x)), theirs(x)


def relukan(layers) -> Pair:
    g, k = 5, 3
    theirs = layers.ReLUKANLayer(IN, g, k, OUT)
    options = {"grid_size": g, "order": k, "grid_range": (0.0, 1.0)}
    ours = KANLinear(IN, OUT, basis="relukan", basis_kwargs=options, base_activation="none")
    with torch.no_grad():  # its (I, K) values are read as (K, I) by the conv: same memory
        ours.weight.copy_(theirs.equal_size_conv.weight.reshape(OUT, IN, g + k))
        ours.bias.copy_(theirs.equal_size_conv.bias)
    x = torch.rand(N, IN) * 1.4 - 0.2
    return ours(x), theirs(x)


def fourierkan(module) -> Pair:
    g = 5
    theirs = module.NaiveFourierKANLayer(IN, OUT, g)
    with torch.no_grad():
        theirs.bias.normal_()
    ours = KANLinear(
        IN, OUT, basis="fourierkan", basis_kwargs={"grid_size": g}, base_activation="none"
    )
    with torch.no_grad():
        ours.weight.copy_(torch.cat([theirs.fouriercoeffs[0], theirs.fouriercoeffs[1]], -1))
        ours.bias.copy_(theirs.bias[0])
    x = _inputs()
    return ours(x), theirs(x)


def fastkan(module) -> Pair:
    widths = [IN, 5, OUT]
    theirs = module.FastKAN(widths)
    ours = KAN(widths, basis="rbf", norm="fastkan")
    with torch.no_grad():
        for mine, layer in zip(ours.layers, theirs.layers, strict=True):
            layer.layernorm.weight.normal_()
            layer.layernorm.bias.normal_()
            mine.basis.norm.load_state_dict(layer.layernorm.state_dict())
            mine.weight.copy_(layer.spline_linear.weight.view_as(mine.weight))
            mine.base_weight.copy_(layer.base_linear.weight)
            mine.bias.copy_(layer.base_linear.bias)
    x = _inputs()
    return ours(x), theirs(x)


def _load(root: Path, folder: str, module: str):
    path = root / folder
    if not path.is_dir():
        return None
    sys.path.insert(0, str(path))
    try:
        return importlib.import_module(module)
    except ImportError as error:
        print(f"skipping {folder}: {error}")
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", type=Path, required=True, help="folder of checkouts")
    args = parser.parse_args()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    rows: list[tuple[str, str, Callable[[], Pair]]] = []
    layers = _load(args.upstream, "torch-conv-kan", "kans.layers")
    if layers is not None:
        for wavelet in ("mexican_hat", "morlet", "dog"):
            rows.append((f"WavKANLayer({wavelet})", "wavelet", lambda w=wavelet: wavkan(layers, w)))
        rows.append(
            ("JacobiKANLayer(a=0.5, b=1.5)", "jacobi", lambda: polynomial(layers, "jacobi"))
        )
        rows.append(("BernsteinKANLayer", "bernstein", lambda: polynomial(layers, "bernstein")))
        rows.append(("ReLUKANLayer(g=5, k=3)", "relukan", lambda: relukan(layers)))
    fourier = _load(args.upstream, "FourierKAN", "fftKAN")
    if fourier is not None:
        rows.append(("NaiveFourierKANLayer(g=5)", "fourierkan", lambda: fourierkan(fourier)))
    fast = _load(args.upstream, "fast-kan", "fastkan")
    if fast is not None:
        rows.append(("FastKAN([6, 5, 4])", 'rbf, norm="fastkan"', lambda: fastkan(fast)))
    if layers is not None:
        probe = layers.BernsteinKANLayer(IN, OUT, 5).bernstein_poly(torch.rand(N, IN), 5)
        if torch.equal(probe, torch.ones_like(probe)):
            print("note: upstream BernsteinKANLayer.bernstein_poly is all ones on random inputs")
    print("| upstream layer (float64) | lightning_kan | max abs difference | max abs output |")
    print("|---|---|---|---|")
    for upstream, ours, compare in rows:
        mine, theirs = (t.detach() for t in compare())
        difference = (mine - theirs).abs().max().item()
        scale = theirs.abs().max().item()
        print(f"| {upstream} | `{ours}` | {difference:.1e} | {scale:.2f} |")
        if not math.isfinite(difference):
            raise SystemExit(f"{upstream}: non-finite outputs")


if __name__ == "__main__":
    main()
