#!/bin/bash
# DDP on a SLURM cluster: one task per device, srun starts them all and Lightning reads
# SLURM's variables (SLURM_NTASKS, SLURM_PROCID, ...). Devices per node and nodes default
# to the allocation's (SLURM_NTASKS_PER_NODE, SLURM_NNODES); the defaults are CPU tasks.
#   sbatch examples/slurm.sh [ACCELERATOR [DEVICES [CONFIG [fit options...]]]]
#   sbatch examples/slurm.sh                                     # 2 CPU tasks, quick start
#   sbatch --nodes=2 --ntasks-per-node=4 --gres=gpu:4 examples/slurm.sh gpu 4 \
#       configs/mnist5k_kan.yaml --trainer.precision=16-mixed
# The log is slurm-<job id>.out in the submission folder; results go where CONFIG's logger
# says. Run from the repository root with the environment activated (sbatch passes it on).
#SBATCH --job-name=lightning_kan
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=2        # = trainer.devices
#SBATCH --cpus-per-task=4
#SBATCH --time=04:00:00
set -euo pipefail
accelerator=${1:-cpu}
devices=${2:-${SLURM_NTASKS_PER_NODE:-2}}
config=${3:-configs/quickstart_ddp.yaml}
shift $(($# < 3 ? $# : 3))
srun lightning_kan fit --config "$config" \
    --trainer.accelerator="$accelerator" --trainer.devices="$devices" \
    --trainer.num_nodes="${SLURM_NNODES:-1}" --trainer.strategy=ddp "$@"
