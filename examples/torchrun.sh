#!/bin/bash
# DDP with torchrun (no SLURM): one process per device on this machine. Lightning reads
# torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK); --nproc_per_node and
# trainer.devices are both DEVICES.
#   examples/torchrun.sh [ACCELERATOR [DEVICES [CONFIG [fit options...]]]]
#   examples/torchrun.sh                                  # 2 CPU processes (gloo), quick start
#   examples/torchrun.sh gpu 4 configs/mnist5k_kan.yaml --trainer.precision=16-mixed
# Results go where CONFIG's logger says (or --trainer.logger.init_args.save_dir=...).
# Several machines: replace --standalone by --nnodes, --node_rank and --rdzv_endpoint, and
# add --trainer.num_nodes.
set -euo pipefail
accelerator=${1:-cpu}
devices=${2:-2}
config=${3:-configs/quickstart_ddp.yaml}
shift $(($# < 3 ? $# : 3))
torchrun --standalone --nproc_per_node="$devices" -m lightning_kan.cli fit --config "$config" \
    --trainer.accelerator="$accelerator" --trainer.devices="$devices" --trainer.strategy=ddp "$@"
