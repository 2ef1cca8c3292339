"""LoTRA in a Lightning project you wrote: fine-tune a digits KAN for mirrored digits.

    python examples/lotra_existing_project.py

The module and data are the user's own (``examples/existing_lightning_project.py``);
lightning_kan contributes the ``KAN`` inside and the ``LoTRA`` callback. The KAN is
trained on scikit-learn's digits, then adapted to horizontally mirrored digits by
training only Tucker adapters (a few percent of its parameters); the adapter is exported,
loaded into a fresh copy of the pretrained model, and merged into a plain KAN.
"""

from __future__ import annotations

import copy

import lightning as L
import torch
from existing_lightning_project import DigitsData, DigitsModel
from torch.utils.data import TensorDataset

from lightning_kan import lotra


class MirroredDigitsData(DigitsData):
    """The same images, mirrored left to right: a new domain for the pretrained KAN."""

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        for name in ("train_set", "val_set"):
            x, y = getattr(self, name).tensors
            mirrored = x.view(-1, 8, 8).flip(-1).reshape(-1, 64)
            setattr(self, name, TensorDataset(mirrored, y))


def accuracy(trainer: L.Trainer, model: L.LightningModule, data: L.LightningDataModule) -> float:
    return trainer.validate(model, data, verbose=False)[0]["val/accuracy"]


def main(pretrain_epochs: int = 10, finetune_epochs: int = 10, folder: str = "runs") -> dict:
    L.seed_everything(0)
    quiet = {
        "accelerator": "cpu",
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    model = DigitsModel()
    trainer = L.Trainer(max_epochs=pretrain_epochs, enable_checkpointing=False, **quiet)
    trainer.fit(model, DigitsData())
    pretrained = copy.deepcopy(model)
    results = {"pretrained, digits": accuracy(trainer, model, DigitsData())}
    results["pretrained, mirrored"] = accuracy(trainer, model, MirroredDigitsData())

    # ranks per mode (out, in, basis); layer 0 is (32, 64, 8), layer 1 is (10, 32, 8)
    callback = lotra.LoTRA(ranks=[8, 8, 4], lr=1e-2, export_dir=f"{folder}/mirrored_adapter")
    finetune = L.Trainer(
        max_epochs=finetune_epochs, callbacks=[callback], enable_checkpointing=False, **quiet
    )
    finetune.fit(model, MirroredDigitsData())  # DigitsModel.configure_optimizers is bypassed
    results["LoTRA, mirrored"] = accuracy(finetune, model, MirroredDigitsData())
    report = lotra.parameter_report(model)
    results["trainable parameters"] = report.trainable

    # the exported adapter turns a fresh pretrained model into the fine-tuned one
    lotra.load_adapter(pretrained, f"{folder}/mirrored_adapter")
    x = torch.rand(16, 64) * 2 - 1
    with torch.no_grad():
        results["adapter file reproduces the model"] = torch.equal(pretrained(x), model(x))
        lotra.merge_adapter(pretrained)  # a plain KAN again, no adapter cost at inference
        results["merged max difference"] = float((pretrained(x) - model(x)).abs().max())
    return results


if __name__ == "__main__":
    for key, value in main().items():
        print(f"{key:>36}: {value}")
