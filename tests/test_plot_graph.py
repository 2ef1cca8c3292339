"""Edge plots with axis values, score fading, cut and symbolic edges; the graph plot."""

from __future__ import annotations

import math
import warnings

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from lightning_kan.callbacks import ActivationPlot
from lightning_kan.callbacks.activation_plot import scores_or_none
from lightning_kan.data import FunctionDataModule
from lightning_kan.interpret import edge_scores
from lightning_kan.layers.masks import edge_mask, set_edge_mask
from lightning_kan.layers.symbolic import symbolic_edges
from lightning_kan.nets import KAN, SlimKAN
from lightning_kan.plotting import (
    CUT_ALPHA,
    SYMBOLIC_COLOR,
    fade,
    plot_edge_functions,
    plot_graph,
    save_figure,
)
from lightning_kan.tasks import RegressionTask

matplotlib = pytest.importorskip("matplotlib")
from matplotlib.colors import to_rgba  # noqa: E402


def known_inputs() -> torch.Tensor:
    """Input 0 spans [-1, 0.5], input 1 spans [0, 2]."""
    steps = torch.linspace(0, 1, 50)
    return torch.stack([-1 + 1.5 * steps, 2 * steps.flip(0)], dim=1)


def axes_grid(figure, rows: int, cols: int):
    return [figure.axes[r * cols : (r + 1) * cols] for r in range(rows)]


def labels(ticks) -> list[str]:
    return [tick.get_text() for tick in ticks]


def test_edge_plots_show_the_input_and_output_ranges_as_ticks():
    net = KAN([2, 2, 1])
    x = known_inputs()
    first, _ = plot_edge_functions(net, x, num_points=50)
    sweep = torch.stack([torch.linspace(-1, 0.5, 50), torch.linspace(0, 2, 50)], dim=1)
    with torch.no_grad():
        edges = net.layers[0].edge_activations(sweep)
    for o, row in enumerate(axes_grid(first, 2, 2)):
        for i, axis in enumerate(row):
            assert labels(axis.get_xticklabels()) == [["-1", "0.5"], ["0", "2"]][i]
            low, high = float(edges[:, o, i].min()), float(edges[:, o, i].max())
            assert labels(axis.get_yticklabels()) == [f"{low:.3g}", f"{high:.3g}"]
            assert axis.get_xticklabels()[0].get_fontsize() == 6


def test_edge_opacity_is_tanh_of_beta_times_the_score():
    net = KAN([2, 2, 1])
    scores = [torch.tensor([[0.0, 0.1], [0.3, 2.0]]), torch.tensor([[0.05, 0.5]])]
    for beta in (3.0, 1.5):
        figures = plot_edge_functions(net, known_inputs(), scores=scores, beta=beta)
        for figure, score, (rows, cols) in zip(figures, scores, [(2, 2), (1, 2)], strict=True):
            for o, row in enumerate(axes_grid(figure, rows, cols)):
                for i, axis in enumerate(row):
                    (line,) = axis.lines
                    expected = math.tanh(beta * float(score[o, i]))
                    assert line.get_alpha() == pytest.approx(expected, abs=1e-7)
    assert fade(-1.0) == 0.0 and fade(0.5, 2.0) == pytest.approx(math.tanh(1.0))


def test_plots_take_the_scores_of_edge_scores():
    net = KAN([2, 3, 1])
    x = known_inputs()
    scores = edge_scores(net, x)
    graph = plot_graph(net, x, scores)
    lines = {line.get_gid(): line for line in graph.axes[0].lines}
    for index, score in enumerate(scores):
        for o in range(score.shape[0]):
            for i in range(score.shape[1]):
                expected = math.tanh(3.0 * float(score[o, i]))
                assert lines[f"edge {index} {o} {i}"].get_alpha() == pytest.approx(expected)


def test_cut_edges_are_dashed_in_edge_plots_and_left_out_of_the_graph():
    net = KAN([3, 2, 1])
    keep = torch.tensor([[True, False, True], [False, False, True]])
    set_edge_mask(net.layers[0], keep)
    (first, _) = plot_edge_functions(net, torch.rand(40, 3))
    for o, row in enumerate(axes_grid(first, 2, 3)):
        for i, axis in enumerate(row):
            (line,) = axis.lines
            if keep[o, i]:
                assert line.get_linestyle() == "-" and line.get_alpha() == 1.0
            else:
                assert line.get_linestyle() == "--" and line.get_alpha() == CUT_ALPHA
    graph = plot_graph(net, torch.rand(40, 3))
    gids = sorted(line.get_gid() for line in graph.axes[0].lines)
    expected = [f"edge 0 {o} {i}" for o in range(2) for i in range(3) if keep[o, i]]
    assert gids == sorted([*expected, "edge 1 0 0", "edge 1 0 1"])
    assert len(graph.axes[0].lines) == int(keep.sum()) + 2


def make_symbolic(net: KAN) -> str:
    """Edge (1, 0) of layer 0 becomes 2 sin(3x + 1) - 0.5 (numeric part cut); its label."""
    layer = net.layers[0]
    symbolic_edges(layer).set_edge(1, 0, "sin", (3.0, 1.0, 2.0, -0.5))
    keep = edge_mask(layer)
    keep[1, 0] = False
    set_edge_mask(layer, keep)
    return layer.symbolic.edge_label(1, 0)


def test_symbolic_edges_show_their_formula_in_another_colour():
    net = KAN([2, 2, 1])
    label = make_symbolic(net)
    assert "sin" in label
    first, _ = plot_edge_functions(net, known_inputs())
    grid = axes_grid(first, 2, 2)
    symbolic_axis = grid[1][0]
    assert symbolic_axis.get_title() == label
    assert symbolic_axis.title.get_color() == SYMBOLIC_COLOR
    (line,) = symbolic_axis.lines
    assert to_rgba(line.get_color()) == to_rgba(SYMBOLIC_COLOR) and line.get_linestyle() == "-"
    # the drawn curve is the symbolic function itself
    x, y = (torch.as_tensor(v, dtype=torch.float32) for v in line.get_data())
    torch.testing.assert_close(y, 2 * torch.sin(3 * x + 1) - 0.5, atol=1e-5, rtol=0)
    for o, i in [(0, 0), (0, 1), (1, 1)]:
        assert to_rgba(grid[o][i].lines[0].get_color()) != to_rgba(SYMBOLIC_COLOR)
    graph_lines = {line.get_gid(): line for line in plot_graph(net).axes[0].lines}
    assert to_rgba(graph_lines["edge 0 1 0"].get_color()) == to_rgba(SYMBOLIC_COLOR)
    assert to_rgba(graph_lines["edge 0 0 0"].get_color()) != to_rgba(SYMBOLIC_COLOR)


def test_graph_draws_mult_nodes_and_their_two_factor_edges():
    net = KAN([2, 3, 1], mult_nodes=1)  # hidden: 2 sum nodes, 1 mult node of subnodes 2, 3
    graph = plot_graph(net, known_inputs())
    axis = graph.axes[0]
    markers = {c.get_gid(): c.get_offsets() for c in axis.collections}
    assert len(markers["mult_nodes"]) == 1 and len(markers["sum_nodes"]) == 2 + 2 + 1
    mult_x, mult_y = (float(v) for v in markers["mult_nodes"][0])
    assert mult_y == 1.0
    assert len(axis.lines) == 4 * 2 + 3  # layer 0: 4 subnodes x 2 inputs; layer 1: 3 x 1
    lines = {line.get_gid(): line for line in axis.lines}
    ends = [float(lines[f"edge 0 {sub} 0"].get_xdata()[1]) for sub in (2, 3)]
    # both factors arrive at the mult node, side by side
    assert ends[0] < mult_x < ends[1] and ends[1] - ends[0] < 1 / 3
    assert "x" in [text.get_text() for text in axis.texts]
    # layer 1 reads the mult node (node 2) from its x position
    assert float(lines["edge 1 0 2"].get_xdata()[0]) == pytest.approx(mult_x)
    # the input nodes name their sample ranges
    assert "x0\n[-1, 0.5]" in [text.get_text() for text in axis.texts]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scores": [torch.zeros(2, 2)]}, r"scores must hold one tensor per layer .*\(2, 2\), "),
        ({"beta": 0.0}, r"beta must be a finite number > 0, got 0.0"),
    ],
)
def test_plot_argument_errors(kwargs, match):
    net = KAN([2, 2, 1])
    with pytest.raises(ValueError, match=match):
        plot_edge_functions(net, known_inputs(), **kwargs)
    with pytest.raises(ValueError, match=match):
        plot_graph(net, known_inputs(), **kwargs)


def test_plot_graph_checks_the_input_width():
    with pytest.raises(ValueError, match=r"plot_graph: inputs must have the network's 2 input"):
        plot_graph(KAN([2, 2, 1]), torch.rand(8, 3))


def test_activation_plot_fades_only_dense_kans():
    x = known_inputs()
    net = KAN([2, 3, 1])
    for got, expected in zip(scores_or_none(net, x), edge_scores(net, x), strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert scores_or_none(SlimKAN([2, 3, 1], ranks=1), x) is None


def fit(tmp_path, net, callback, epochs=2):
    data = FunctionDataModule("kan-toy", num_train=128, num_val=32, num_test=32, batch_size=64)
    run = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=CSVLogger(tmp_path, name="plots"),
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    run.fit(RegressionTask(net), data)


def test_activation_plot_saves_the_graph(tmp_path):
    fit(tmp_path, KAN([2, 3, 1]), ActivationPlot(every_n_epochs=2, graph=True))
    pngs = sorted(p.name for p in (tmp_path / "plots/version_0/activations").glob("*.png"))
    assert pngs == [
        "epoch=1-step=4-graph.png",
        "epoch=1-step=4-layer=0.png",
        "epoch=1-step=4-layer=1.png",
        "final-step=4-graph.png",
        "final-step=4-layer=0.png",
        "final-step=4-layer=1.png",
    ]


def test_activation_plot_draws_nets_interpret_refuses_without_warnings(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(tmp_path, SlimKAN([2, 3, 1], ranks=1), ActivationPlot(every_n_epochs=1, graph=True))
    ours = [w for w in caught if "lightning_kan" in str(w.filename) or "score" in str(w.message)]
    assert ours == []
    assert len(list((tmp_path / "plots/version_0/activations").glob("*graph.png"))) == 3


def test_activation_plot_rejects_a_non_bool_graph():
    with pytest.raises(ValueError, match=r"graph must be True or False, got 1"):
        ActivationPlot(graph=1)


def test_figures_save_as_png(tmp_path):
    net = KAN([2, 3, 1], mult_nodes=1)
    save_figure(
        plot_graph(net, known_inputs(), edge_scores(net, known_inputs())), tmp_path / "g.png"
    )
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
