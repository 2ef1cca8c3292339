"""The MetaKAN authors' function-fitting recipe: the KAN paper's variable ranges, the mean
absolute error, the authors' initialisation, full-batch L-BFGS and its shipped configs."""

from __future__ import annotations

import csv
import itertools
import math
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from torchmetrics import MeanAbsoluteError

from lightning_kan.cli import main
from lightning_kan.data import (
    EQUATIONS,
    FEYNMAN_EQUATIONS,
    KAN_PAPER_RANGES,
    FunctionDataModule,
    with_ranges,
)
from lightning_kan.layers import MetaKANLinear, MetaLearner
from lightning_kan.nets import MetaConvKAN, MetaKAN
from lightning_kan.tasks import RegressionScores, RegressionTask

ROOT = Path(__file__).resolve().parents[1]
ALL_LBFGS = "every epoch uses L-BFGS, none Adam"


# --- the KAN paper's ranges ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(KAN_PAPER_RANGES))
def test_kan_paper_ranges_produce_samples_inside_the_stated_boxes(name):
    data = FunctionDataModule(
        name, ranges="kan_paper", normalize_inputs=False, num_train=2000, num_val=2, num_test=2
    )
    data.setup()
    x, y = data.splits["train"].tensors
    boxes = torch.tensor(KAN_PAPER_RANGES[name])
    low, high = boxes[:, 0], boxes[:, 1]
    assert x.shape == (2000, len(boxes))
    assert bool(((x >= low) & (x <= high)).all())
    # uniform on the box: 2000 samples come within 1% of both ends of every side
    assert bool(((x.min(0).values - low) < 0.01 * (high - low)).all())
    assert bool(((high - x.max(0).values) < 0.01 * (high - low)).all())
    # the targets are the formula at these (raw) inputs
    torch.testing.assert_close(y, EQUATIONS[name].formula(*x.T).reshape(-1, 1))


def test_kan_paper_ranges_of_i_9_18_and_normalised_inputs():
    data = FunctionDataModule("I.9.18", ranges="kan_paper", num_train=500)
    assert [v[1:] for v in data.equation.variables] == [(-1.0, 1.0)] * 3 + [
        (-1.0, -0.5),
        (0.5, 1.0),
    ] * 3
    data.setup()
    x, _ = data.splits["train"].tensors  # normalised: every range onto [-1, 1]
    assert float(x.min()) >= -1 and float(x.max()) <= 1
    # input_variables map the KAN-paper box: x1 in [-1, -0.5] -> scale 4, shift 3
    assert data.input_variables[3] == ("x1", 4.0, 3.0)


def test_the_default_ranges_are_unchanged():
    for name, equation in FEYNMAN_EQUATIONS.items():
        assert FunctionDataModule(name).equation is equation
        assert with_ranges(equation, "ai_feynman") is equation
    assert FunctionDataModule("I.9.18").equation.variables[3] == ("x1", 3.0, 4.0)


def test_bad_range_sets_are_clear_errors():
    with pytest.raises(ValueError, match=r"ranges='kan' is not a known set.*'kan_paper'"):
        FunctionDataModule("I.8.4", ranges="kan")
    with pytest.raises(ValueError, match="ranges='kan_paper' has no ranges for equation"):
        # a custom function has no KAN-paper ranges: it takes variable_range instead
        FunctionDataModule("math.fsum", num_variables=2, ranges="kan_paper")


# --- the mean absolute error ------------------------------------------------------------


def test_mae_equals_the_official_formula_on_planted_values():
    prediction = torch.tensor([[1.0], [2.0], [-3.0], [0.5]])
    target = torch.tensor([[1.5], [0.0], [-1.0], [0.5]])
    scores = RegressionScores(mae=True)
    scores.update(prediction[:3], target[:3])  # two updates: sums over everything seen
    scores.update(prediction[3:], target[3:])
    result = scores.compute()
    assert result["mae"].item() == pytest.approx((0.5 + 2.0 + 2.0 + 0.0) / 4, rel=1e-7)
    # the authors' code: the mean over samples of sqrt(per-sample squared error)
    official = F.mse_loss(prediction, target, reduction="none").sqrt().sum() / len(target)
    assert result["mae"].item() == pytest.approx(official.item(), rel=1e-7)
    assert result["mse"].item() == pytest.approx((0.25 + 4 + 4) / 4, rel=1e-7)


def test_mae_matches_torchmetrics_for_several_outputs_and_is_off_by_default():
    torch.manual_seed(0)
    prediction, target = torch.randn(50, 3), torch.randn(50, 3)
    scores, reference = RegressionScores(mae=True), MeanAbsoluteError()
    for rows in (slice(0, 20), slice(20, 50)):
        scores.update(prediction[rows], target[rows])
        reference.update(prediction[rows], target[rows])
    torch.testing.assert_close(scores.compute()["mae"], reference.compute())
    plain = RegressionScores()
    plain.update(prediction, target)
    assert set(plain.compute()) == {"mse", "rel_l2", "r2"}
    with pytest.raises(ValueError, match=r"mae must be true or false.*got 'yes'"):
        RegressionTask(MetaKAN([2, 3, 1]), mae="yes")


# --- the authors' initialisation ---------------------------------------------------------


def test_xavier_init_has_the_stated_std_zero_biases_and_no_scaling():
    torch.manual_seed(0)
    layer = MetaKANLinear(100, 200, hidden_dim=512, init="xavier")
    assert layer.prompts.shape == (200, 100, 1)
    # sqrt(2 / (in + out)) for scalar prompts; 20,000 draws: the sample std is within 2%
    assert layer.prompts.std().item() == pytest.approx(math.sqrt(2 / 300), rel=0.02)
    first, _, second = layer.meta_learner.net
    assert first.weight.std().item() == pytest.approx(math.sqrt(2 / (1 + 512)), rel=0.1)
    assert second.weight.std().item() == pytest.approx(math.sqrt(2 / (512 + 9)), rel=0.03)
    assert not first.bias.any() and not second.bias.any()
    assert layer.weight_scale.item() == 1.0
    # the generated weights are the meta-learner's outputs, unscaled
    weight, base = layer.coefficients.tensors(layer)
    out = layer.meta_learner(layer.prompts)
    torch.testing.assert_close(weight, out[..., :8].movedim(-1, 2))
    torch.testing.assert_close(base, out[..., 8])


def test_the_scaled_init_keeps_its_std_and_scale():
    torch.manual_seed(0)
    layer = MetaKANLinear(100, 200, init="scaled")
    assert layer.prompts.std().item() == pytest.approx(1.0, rel=0.02)
    assert layer.weight_scale.item() == pytest.approx(1 / math.sqrt(100))
    assert layer.meta_learner.net[0].bias.abs().sum() > 0  # PyTorch's Linear init
    conv = MetaConvKAN(1, 3, (4,), init="scaled").blocks[0][0]  # fan_in = 1 * 3 * 3
    assert conv.meta_learner.init == "scaled" and conv.weight_scale.item() == pytest.approx(1 / 3)
    assert MetaConvKAN(1, 3, (4,)).blocks[0][0].weight_scale.item() == 1.0  # default xavier


def test_metakan_defaults_to_xavier_and_old_checkpoints_load_with_their_scale():
    torch.manual_seed(1)
    default = MetaKAN([3, 4, 1])
    torch.manual_seed(1)
    xavier = MetaKAN([3, 4, 1], init="xavier")
    x = torch.rand(6, 3)
    torch.testing.assert_close(default(x), xavier(x), rtol=0, atol=0)
    # a checkpoint of the scaled init keeps its scale in a fresh (xavier) network
    scaled = MetaKAN([3, 4, 1], init="scaled")
    MetaKAN([3, 4, 1]).load_state_dict(scaled.state_dict())
    loaded = MetaKAN([3, 4, 1])
    loaded.load_state_dict(scaled.state_dict())
    torch.testing.assert_close(loaded(x), scaled(x), rtol=0, atol=0)
    # one saved before `init` existed has no weight_scale: it was the scaled init
    old = {k: v for k, v in scaled.state_dict().items() if not k.endswith("weight_scale")}
    assert len(old) == len(scaled.state_dict()) - 2
    loaded = MetaKAN([3, 4, 1])
    loaded.load_state_dict(old)  # strict: nothing missing
    torch.testing.assert_close(loaded(x), scaled(x), rtol=0, atol=0)
    assert [layer.weight_scale.item() for layer in loaded.meta_layers()] == pytest.approx(
        [1 / math.sqrt(3), 1 / math.sqrt(4)]
    )


def test_a_shared_meta_learner_and_a_bad_init():
    net = MetaKAN([3, 6, 6, 1], init="xavier")
    (learner,) = net.meta_learners
    assert learner.init == "xavier" and all(
        layer.weight_scale.item() == 1.0 for layer in net.meta_layers()
    )
    with pytest.raises(ValueError, match="init='glorot' is not a MetaKAN initialisation"):
        MetaKAN([3, 4, 1], init="glorot")
    with pytest.raises(ValueError, match="init='glorot'"):
        MetaLearner(9, init="glorot")


# --- full-batch L-BFGS -------------------------------------------------------------------


def _fit(root: Path, epochs: int, callbacks=(), **fit_kwargs) -> RegressionTask:
    """A [2, 4, 1] MetaKAN (xavier) on I.12.5 (KAN-paper ranges): every epoch one
    L-BFGS step on the whole training set."""
    L.seed_everything(0, verbose=False)
    data = FunctionDataModule(
        "I.12.5",
        ranges="kan_paper",
        normalize_inputs=False,
        num_train=200,
        num_val=50,
        num_test=50,
        batch_size=200,
    )
    task = RegressionTask(
        MetaKAN([2, 4, 1], hidden_dim=8, init="xavier"),
        lbfgs_epochs=epochs,
        lbfgs_max_iter=5,
        lbfgs_history_size=10,
        initial_grid=None,
        mae=True,
    )
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        default_root_dir=root,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=bool(callbacks),
        limit_val_batches=0,
        callbacks=list(callbacks),
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=f".*{ALL_LBFGS}")
        trainer.fit(task, data, **fit_kwargs)
    task.data = data
    return task


def _train_loss(task: RegressionTask) -> float:
    x, y = task.data.splits["train"].tensors
    with torch.no_grad():
        return F.mse_loss(task(x), y).item()


def test_full_batch_lbfgs_decreases_the_loss_and_resumes_exactly(tmp_path):
    every_epoch = ModelCheckpoint(tmp_path / "checkpoints", save_top_k=-1, every_n_epochs=1)
    start = _train_loss(_untrained())  # the same initial network as every fit here
    whole = _fit(tmp_path / "a", 4, callbacks=[every_epoch])
    # full batch + strong-Wolfe line search: the training loss falls at every step
    losses = [start] + [
        _train_loss_of_checkpoint(next((tmp_path / "checkpoints").glob(f"epoch={e}-*")), whole)
        for e in range(4)
    ]
    assert all(later < earlier for earlier, later in itertools.pairwise(losses))
    assert losses[-1] == pytest.approx(_train_loss(whole)) and losses[-1] < 0.25 * start
    (checkpoint,) = (tmp_path / "checkpoints").glob("epoch=1-*.ckpt")
    resumed = _fit(tmp_path / "b", 4, ckpt_path=str(checkpoint))
    for name, value in whole.net.state_dict().items():
        torch.testing.assert_close(resumed.net.state_dict()[name], value, rtol=0, atol=0)
    torch.testing.assert_close(resumed.lbfgs.batch, whole.lbfgs.batch, rtol=0, atol=0)
    assert len(resumed.lbfgs.batch[0]) == 200  # the whole training set


def _untrained() -> RegressionTask:
    L.seed_everything(0, verbose=False)
    task = RegressionTask(MetaKAN([2, 4, 1], hidden_dim=8, init="xavier"), initial_grid=None)
    data = FunctionDataModule(
        "I.12.5", ranges="kan_paper", normalize_inputs=False, num_train=200, batch_size=200
    )
    data.setup()
    task.data = data
    return task


def _train_loss_of_checkpoint(path: Path, like: RegressionTask) -> float:
    state = torch.load(path, weights_only=True)["state_dict"]
    task = _untrained()
    task.load_state_dict(state)
    task.data = like.data
    return _train_loss(task)


# --- the shipped configs, shortened ------------------------------------------------------


@pytest.mark.parametrize("config", ["feynman_metakan_official.yaml", "feynman_kan_official.yaml"])
def test_official_recipe_configs_run_shortened(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=f".*{ALL_LBFGS}")
        main(
            [
                "fit",
                "--config",
                str(ROOT / "configs" / config),
                "--trainer.max_epochs=3",
                "--trainer.enable_progress_bar=false",
                "--model.init_args.lbfgs_epochs=3",
                "--model.init_args.lbfgs_max_iter=5",
                "--data.init_args.num_train=200",
                "--data.init_args.num_val=100",
                "--data.init_args.batch_size=200",
            ]
        )
    name = config.removesuffix(".yaml")
    (metrics_csv,) = (tmp_path / "runs" / name).glob("version_0/metrics.csv")
    with open(metrics_csv) as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("val/mae")]
    assert len(rows) == 3  # one validation per epoch, one L-BFGS step each
    maes = [float(row["val/mae"]) for row in rows]
    assert maes[-1] < maes[0]
    # the best checkpoint is the epoch of least val/mae (the authors' best-epoch metric)
    (best,) = (tmp_path / "runs" / name).glob(
        f"version_0/checkpoints/epoch={maes.index(min(maes))}-*"
    )
    assert best.is_file()
