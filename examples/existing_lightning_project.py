"""Using lightning_kan inside a plain Lightning project you wrote, without its CLI.

    python examples/existing_lightning_project.py

Your own LightningModule and data stay as they are; lightning_kan contributes the
network (a ``KAN`` where you had an MLP; ``KANLinear``/``KANConv2d`` drop into any
``nn.Module`` the same way) and two callbacks that act on ``module.net``: GridUpdate moves
the B-spline grids to the data during training, ActivationPlot draws the learned edge
functions (PNG files in the run folder with the CSV logger, images in W&B, figures in
TensorBoard).
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset

from lightning_kan.callbacks import ActivationPlot, GridUpdate
from lightning_kan.nets import KAN


class DigitsModel(L.LightningModule):
    """A user's own module; only the network comes from lightning_kan."""

    def __init__(self, hidden: int = 32, lr: float = 5e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = KAN([64, hidden, 10], basis="bspline", basis_kwargs={"grid_size": 5})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/accuracy", (self(x).argmax(-1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


class DigitsData(L.LightningDataModule):
    def setup(self, stage: str | None = None) -> None:
        digits = load_digits()
        x = torch.tensor(digits.data, dtype=torch.float32) / 8.0 - 1.0
        y = torch.tensor(digits.target)
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
        self.train_set = TensorDataset(x[order[:1500]], y[order[:1500]])
        self.val_set = TensorDataset(x[order[1500:]], y[order[1500:]])

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=64, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=256)


def main() -> None:
    L.seed_everything(0)
    trainer = L.Trainer(
        max_epochs=10,
        accelerator="cpu",
        logger=L.pytorch.loggers.CSVLogger("runs", name="existing_project"),
        callbacks=[GridUpdate(every_n_epochs=3, until_epoch=6), ActivationPlot(every_n_epochs=5)],
    )
    trainer.fit(DigitsModel(), DigitsData())
    print(f"validation accuracy {trainer.callback_metrics['val/accuracy']:.3f}")


if __name__ == "__main__":
    main()
