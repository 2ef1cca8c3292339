#!/bin/bash
# DDP with torchrun (no SLURM): one process per GPU on this machine. Lightning picks up
# torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK); devices must match
# --nproc_per_node. For several machines add --nnodes, --node_rank and --rdzv_endpoint.
set -euo pipefail
torchrun --nproc_per_node=2 -m lightning_kan.cli fit --config configs/mnist5k_kan.yaml \
    --trainer.accelerator=gpu --trainer.devices=2 --trainer.strategy=ddp
