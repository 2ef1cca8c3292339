#!/bin/bash
# Multi-GPU / multi-node training on a SLURM cluster. Lightning reads SLURM's variables
# (SLURM_NTASKS, SLURM_PROCID, ...) itself: one task per GPU, srun starts them all.
#   sbatch examples/slurm.sh
#SBATCH --job-name=lightning_kan
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4        # = GPUs per node = trainer.devices
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=8
#SBATCH --time=04:00:00
#SBATCH --output=runs/slurm-%j.out
set -euo pipefail
source .venv/bin/activate
srun lightning_kan fit --config configs/mnist5k_kan.yaml \
    --trainer.accelerator=gpu --trainer.devices=4 --trainer.num_nodes=2 \
    --trainer.strategy=ddp --trainer.precision=16-mixed
