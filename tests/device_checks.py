"""Device checks shared by ``tests/test_cuda.py`` (run on ``"cuda"``) and
``tests/test_device_checks.py`` (the same code on ``"cpu"``, so the comparison logic,
the tolerances and the sync probe are exercised on every machine).

Every check builds its modules on the CPU from one seed, runs them on ``device`` in a
given precision, and compares with a float64 CPU reference of the same weights by the
normwise relative error ``||actual - expected|| / ||expected||`` of every output and
gradient (one figure per tensor, robust to the elementwise noise of low precision).
"""

from __future__ import annotations

import contextlib
import copy
import csv
import math
import os
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch.overrides import TorchFunctionMode

from lightning_kan import lotra
from lightning_kan.bases import available_bases, build_basis
from lightning_kan.cli import main
from lightning_kan.layers import (
    KANConv1d,
    KANConv2d,
    KANConv3d,
    KANLinear,
    MetaKANConv2d,
    MetaKANLinear,
    SlimKANConv2d,
    SlimKANLinear,
)
from lightning_kan.nets import KAN, MLP, ConvKAN, MetaKAN, SlimKAN
from lightning_kan.utils import close_process_group

#: Lightning precision name -> autocast dtype (None: plain float32)
PRECISIONS: dict[str, torch.dtype | None] = {
    "32": None,
    "16-mixed": torch.float16,
    "bf16-mixed": torch.bfloat16,
}
#: largest normwise relative error against float64 per precision: float32 round-off
#: through a few layers (TF32 off), and 10 machine epsilons of float16 (10-bit
#: mantissa) and bfloat16 (7-bit): their GEMMs accumulate in float32 and the features
#: are expanded in float32 (architecture.md section 4), so errors stay near one rounding
#: per layer and pass (CPU autocast: at most 2.3 and 4.2 epsilons on these cases)
TOLERANCE = {
    "32": 1e-5,
    "16-mixed": 10 * torch.finfo(torch.float16).eps,
    "bf16-mixed": 10 * torch.finfo(torch.bfloat16).eps,
}

Build = Callable[[], tuple[nn.Module, torch.Tensor]]


def _uniform(*shape: int) -> torch.Tensor:
    """Inputs in [-1.1, 1.1]: the grid's inside and a little of its outside."""
    return torch.rand(*shape) * 2.2 - 1.1


def _basis_case(name: str) -> Build:
    return lambda: (KANLinear(4, 3, basis=name), _uniform(16, 4))


def library_bases() -> list[str]:
    """The basis families lightning_kan registers (not those a test registers for itself)."""
    return [
        name
        for name in available_bases()
        if type(build_basis(name, 2)).__module__.startswith("lightning_kan.")
    ]


#: every basis family of the library in a dense KANLinear (new families are covered)
BASIS_CASES: dict[str, Build] = {name: _basis_case(name) for name in library_bases()}
#: every layer family
LAYER_CASES: dict[str, Build] = {
    "dense": lambda: (KANLinear(5, 3), _uniform(16, 5)),
    "slim": lambda: (SlimKANLinear(5, 3, ranks=2), _uniform(16, 5)),
    "meta": lambda: (MetaKANLinear(5, 3), _uniform(16, 5)),
    "conv1d": lambda: (KANConv1d(2, 3, 3, padding=1), _uniform(2, 2, 9)),
    "conv2d": lambda: (KANConv2d(2, 3, 3, padding=1, stride=2), _uniform(2, 2, 7, 7)),
    "conv3d": lambda: (KANConv3d(2, 3, 3), _uniform(2, 2, 5, 5, 5)),
    "slim-conv2d": lambda: (SlimKANConv2d(2, 3, 3, ranks=2), _uniform(2, 2, 6, 6)),
    "meta-conv2d": lambda: (MetaKANConv2d(2, 3, 3), _uniform(2, 2, 6, 6)),
}
#: every network class
NET_CASES: dict[str, Build] = {
    "kan": lambda: (KAN([3, 5, 2]), _uniform(16, 3)),
    "kan-layernorm-chebyshev": lambda: (
        KAN([3, 5, 2], basis="chebyshev", norm="layer"),
        _uniform(16, 3),
    ),
    "slimkan": lambda: (SlimKAN([3, 5, 2], ranks=2), _uniform(16, 3)),
    "metakan": lambda: (MetaKAN([3, 5, 2]), _uniform(16, 3)),
    "convkan": lambda: (
        ConvKAN(in_channels=1, num_classes=3, channels=(4, 4)),
        _uniform(4, 1, 8, 8),
    ),
    "mlp": lambda: (MLP([3, 8, 2]), _uniform(16, 3)),
}
CASES: dict[str, Build] = {**BASIS_CASES, **LAYER_CASES, **NET_CASES}


def build(case: str) -> tuple[nn.Module, torch.Tensor]:
    """The module and input of ``case``, from seed 0 (identical on every call)."""
    torch.manual_seed(0)
    return CASES[case]()


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """``||actual - expected|| / ||expected||`` in float64 (0 when both are zero)."""
    actual, expected = actual.double().cpu(), expected.double().cpu()
    scale = expected.norm().item()
    difference = (actual - expected).norm().item()
    return difference / scale if scale > 0 else difference


@contextlib.contextmanager
def exact_float32(device: str) -> Iterator[None]:
    """Turn TF32 off on CUDA (cuDNN convolutions use it by default), so float32 is
    compared as float32."""
    if not device.startswith("cuda"):
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def forward_backward(
    module: nn.Module, x: torch.Tensor, device: str, precision: str
) -> dict[str, torch.Tensor]:
    """Output, input gradient and every parameter gradient of one forward and backward
    of ``module`` on ``device`` under ``precision`` (autocast for the mixed ones), with a
    fixed upstream gradient; all returned on the CPU in float64."""
    dtype = PRECISIONS[precision]
    module = module.to(device)
    x = x.to(device).requires_grad_()
    with exact_float32(device):  # the backward too: cuDNN picks TF32 kernels at launch
        with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            output = module(x)
        generator = torch.Generator().manual_seed(1)
        upstream = torch.randn(output.shape, generator=generator, dtype=torch.float64)
        output.backward(upstream.to(device=device, dtype=output.dtype))
    results = {"output": output, "input.grad": x.grad}
    for name, parameter in module.named_parameters():
        if parameter.grad is not None:
            results[f"{name}.grad"] = parameter.grad
    return {name: value.detach().double().cpu() for name, value in results.items()}


def errors_against_float64(
    module: nn.Module,
    x: torch.Tensor,
    device: str,
    precision: str,
    reference: nn.Module | None = None,
) -> dict[str, float]:
    """Relative error of every output and gradient of ``module`` on ``device`` against
    ``reference`` (default: the same module) in float64 on the CPU. Raises if the two
    runs produced different sets of gradients."""
    reference = copy.deepcopy(module if reference is None else reference).double()
    expected = forward_backward(reference, x.double(), "cpu", "32")
    actual = forward_backward(copy.deepcopy(module), x.clone(), device, precision)
    assert actual.keys() == expected.keys(), (sorted(actual), sorted(expected))
    return {name: relative_error(actual[name], expected[name]) for name in expected}


def assert_matches_float64(
    module: nn.Module,
    x: torch.Tensor,
    device: str,
    precision: str,
    reference: nn.Module | None = None,
) -> dict[str, float]:
    """:func:`errors_against_float64` within :data:`TOLERANCE` for every tensor."""
    errors = errors_against_float64(module, x, device, precision, reference)
    bad = {name: error for name, error in errors.items() if not error <= TOLERANCE[precision]}
    assert not bad, f"{device} {precision}: relative errors above {TOLERANCE[precision]}: {bad}"
    return errors


def check_compiled(device: str, basis: str) -> dict[str, float]:
    """``KANLinear(compiled=True)`` on ``device`` against the eager layer in float64."""
    torch.manual_seed(0)
    eager = KANLinear(4, 3, basis=basis)
    compiled = KANLinear(4, 3, basis=basis, compiled=True)
    compiled.load_state_dict(eager.state_dict())
    return assert_matches_float64(compiled, _uniform(32, 4), device, "32", reference=eager)


def check_grid_update(device: str) -> None:
    """``update_grid`` and ``refine_grid`` on ``device`` give the CPU's knots and function."""
    torch.manual_seed(0)
    net = KAN([2, 4, 1])
    x = torch.rand(256, 2) * 3 - 1.5  # beyond the initial [-1, 1] grid
    probe = torch.rand(64, 2) * 3 - 1.5
    on_cpu, on_device = copy.deepcopy(net), copy.deepcopy(net).to(device)
    for step in (lambda n, d: n.update_grid(x.to(d)), lambda n, d: n.refine_grid(10)):
        step(on_cpu, "cpu")
        step(on_device, device)
        state = on_device.state_dict()
        for name, value in on_cpu.state_dict().items():
            assert state[name].device.type == torch.device(device).type, name
            assert relative_error(state[name], value) <= 1e-4, name
        with torch.no_grad(), exact_float32(device):
            outputs = on_device(probe.to(device)), on_cpu(probe)
        assert relative_error(*outputs) <= 1e-4


def check_lotra(device: str, folder: Path) -> None:
    """LoTRA on ``device``: adapters added, trained one step, saved, loaded into a fresh
    CPU copy of the base (same function), merged (same function, no parametrisation)."""
    torch.manual_seed(0)
    base = KAN([3, 6, 2], basis="chebyshev")
    x = _uniform(32, 3)
    net = copy.deepcopy(base).to(device)
    lotra.add_adapter(net, ranks=2)
    trainable = [p for name, p in net.named_parameters() if ".adapters." in name]
    optimizer = torch.optim.SGD(trainable, lr=0.5)
    with exact_float32(device):
        net(x.to(device)).square().mean().backward()
        optimizer.step()
        adapted = net(x.to(device)).detach().cpu()
    assert relative_error(adapted, base(x)) > 1e-3  # the step changed the function
    lotra.save_adapter(net, folder)
    loaded = copy.deepcopy(base)
    lotra.load_adapter(loaded, folder)
    with torch.no_grad():
        assert relative_error(loaded(x), adapted) <= 1e-5
        lotra.merge_adapter(net, keep_unmerge=False)
        with exact_float32(device):
            merged = net(x.to(device)).cpu()
    assert relative_error(merged, adapted) <= 1e-5
    assert not any(torch.nn.utils.parametrize.is_parametrized(m) for m in net.modules())


#: functions and methods that read a tensor's value on the host: on a CUDA tensor each
#: waits for the GPU (a host synchronisation)
HOST_READS = frozenset(
    {"item", "__bool__", "__float__", "__int__", "__index__", "tolist", "numpy", "cpu"}
    | {"nonzero", "masked_select", "unique", "argwhere"}
)


class HostReads(TorchFunctionMode):
    """Records every call that reads a tensor's value on the host (device-independent:
    the same calls are found on a CPU run) and, on CUDA, every synchronising CUDA call
    that ``torch.cuda.set_sync_debug_mode("warn")`` reports (boolean-mask indexing,
    blocking copies, host-to-device ones included, which the CPU run cannot see).
    ``found`` lists them in order."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", str(func))
        kwargs = kwargs or {}
        if name in HOST_READS or (name == "__getitem__" and _has_bool_index(args)):
            self.found.append(name)
        elif name == "to" and _moves_to_host(args, kwargs):
            self.found.append("to(cpu)")
        return func(*args, **kwargs)

    @contextlib.contextmanager
    def watch(self) -> Iterator[HostReads]:
        cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
        with warnings.catch_warnings(record=True) as caught, self:
            warnings.simplefilter("always")
            if cuda:
                torch.cuda.set_sync_debug_mode("warn")
            try:
                yield self
            finally:
                if cuda:
                    torch.cuda.set_sync_debug_mode("default")
        self.found += [str(w.message) for w in caught if "synchroniz" in str(w.message)]


def _has_bool_index(args: tuple) -> bool:
    index = args[1] if len(args) > 1 else None
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


def _moves_to_host(args: tuple, kwargs: dict) -> bool:
    """``tensor.to(...)`` onto the CPU from another device, or to the literal ``"cpu"``
    (a host read once the code runs on a GPU); ``.to(device=x.device)`` on a CPU run is
    a no-op and not counted."""
    targets = (*args[1:], *kwargs.values())
    if any(isinstance(t, str) and t == "cpu" for t in targets):
        return True
    source = args[0] if args and isinstance(args[0], torch.Tensor) else None
    return (
        source is not None
        and source.device.type != "cpu"
        and any(isinstance(t, torch.device) and t.type == "cpu" for t in targets)
    )


class HostReadProbe(Callback):
    """Wraps the task's ``training_step`` in :class:`HostReads` on steps the logger does
    not write (logging a step reads its values, by design), and keeps what it found per
    step in ``found``. With ``skip_finite_check`` the NaN check is replaced by a no-op
    so that the rest of the step is probed on its own."""

    #: the probe of the latest run (the CLI builds it from its class path)
    last: HostReadProbe | None = None

    def __init__(self, skip_finite_check: bool = False) -> None:
        self.skip_finite_check = skip_finite_check
        self.found: list[list[str]] = []
        HostReadProbe.last = self

    def on_fit_start(self, trainer, pl_module) -> None:
        step = pl_module.training_step
        if self.skip_finite_check:
            pl_module._check_finite = lambda loss, batch_idx: None

        def probed(batch, batch_idx):
            if pl_module.logs_this_step():
                return step(batch, batch_idx)
            with HostReads().watch() as reads:
                loss = step(batch, batch_idx)
            self.found.append(reads.found)
            return loss

        pl_module.training_step = probed


def state_dicts_equal(left: dict, right: dict) -> bool:
    """Same keys and bitwise-equal tensors (compared on the CPU)."""
    return left.keys() == right.keys() and all(
        torch.equal(left[k].cpu(), right[k].cpu()) for k in left
    )


ROOT = Path(__file__).resolve().parents[1]
#: config -> (run name, overrides that make one epoch short and complete)
FIT_CONFIGS: dict[str, tuple[str, list[str]]] = {
    "quickstart.yaml": ("quickstart", ["--data.init_args.num_train=400"]),
    "digits_kan.yaml": ("digits_kan", []),
    "pde_elliptic.yaml": (
        "pde_elliptic",
        ["--model.init_args.lbfgs_epochs=0", "--trainer.check_val_every_n_epoch=1"],
    ),
}


def fit_one_epoch(config: str, accelerator: str, *extra: str) -> Path:
    """``lightning_kan fit`` of a shipped config for one epoch on ``accelerator`` (in the
    current directory); returns the run's folder ``runs/<name>/version_0``."""
    name, overrides = FIT_CONFIGS[config]
    main(
        [
            "fit",
            f"--config={ROOT / 'configs' / config}",
            f"--trainer.accelerator={accelerator}",
            "--trainer.devices=1",
            "--trainer.max_epochs=1",
            "--trainer.enable_progress_bar=false",
            "--trainer.logger.init_args.version=0",
            *overrides,
            *extra,
        ]
    )
    return Path("runs") / name / "version_0"


def metrics_of_test_run(run: Path, accelerator: str) -> dict[str, float]:
    """``lightning_kan test`` of ``run``'s ``last.ckpt`` on ``accelerator``; the test
    metrics it wrote (the CLI logs a test under ``<run>/test/version_*``)."""
    written = set(run.glob("test/version_*/metrics.csv"))
    main(
        [
            "test",
            f"--config={run / 'config.yaml'}",
            f"--ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
            f"--trainer.accelerator={accelerator}",
            "--trainer.devices=1",
            "--trainer.enable_progress_bar=false",
        ]
    )
    (new,) = set(run.glob("test/version_*/metrics.csv")) - written
    with open(new) as rows:
        return {
            key: float(value)
            for row in csv.DictReader(rows)
            for key, value in row.items()
            if key.startswith("test/") and value
        }


def check_checkpoint_round_trip(run: Path, device: str) -> None:
    """A checkpoint written on ``device`` loads on the CPU (every tensor there) and back
    on ``device``, and ``lightning_kan test`` gives the same metrics on both."""
    last = run / "checkpoints" / "last.ckpt"
    on_cpu = torch.load(last, map_location="cpu", weights_only=True)["state_dict"]
    assert all(value.device.type == "cpu" for value in on_cpu.values())
    on_device = torch.load(last, map_location=device, weights_only=True)["state_dict"]
    assert all(value.device.type == torch.device(device).type for value in on_device.values())
    assert state_dicts_equal(on_cpu, on_device)
    accelerator = "gpu" if device.startswith("cuda") else "cpu"
    with exact_float32(device):
        metrics_device = metrics_of_test_run(run, accelerator)
    metrics_cpu = metrics_of_test_run(run, "cpu")
    assert metrics_cpu.keys() == metrics_device.keys() and metrics_cpu, metrics_cpu
    for key, value in metrics_cpu.items():
        assert abs(metrics_device[key] - value) <= 1e-4 * max(1.0, abs(value)), key


def host_reads_per_step(config: str, accelerator: str, skip_finite_check: bool) -> list[list[str]]:
    """What each unlogged training step of a one-epoch fit of ``config`` read back to the
    host (see :class:`HostReadProbe`)."""
    fit_one_epoch(
        config,
        accelerator,
        "--trainer.callbacks+=device_checks.HostReadProbe",
        f"--trainer.callbacks.skip_finite_check={str(skip_finite_check).lower()}",
    )
    assert HostReadProbe.last is not None
    return HostReadProbe.last.found


def lightning_kan_command() -> str:
    """The ``lightning_kan`` script of this interpreter's environment."""
    return str(Path(sys.executable).with_name("lightning_kan"))


DDP_ARGS = ("--trainer.max_epochs=1", "--trainer.enable_progress_bar=false")


def check_ddp_fit(folder: Path, accelerator: str, devices: int) -> None:
    """``lightning_kan fit`` of the DDP quick start on ``devices`` processes (Lightning's
    launcher re-executes the command per process)."""
    command = [
        lightning_kan_command(),
        "fit",
        f"--config={ROOT / 'configs/quickstart_ddp.yaml'}",
        f"--trainer.accelerator={accelerator}",
        f"--trainer.devices={devices}",
        "--trainer.strategy=ddp",
    ]
    _check_ddp_run(folder, command)


def check_torchrun_fit(folder: Path, accelerator: str, devices: int) -> None:
    """``examples/torchrun.sh accelerator devices`` (torchrun starts the processes)."""
    config = str(ROOT / "configs/quickstart_ddp.yaml")
    _check_ddp_run(
        folder, ["bash", str(ROOT / "examples/torchrun.sh"), accelerator, str(devices), config]
    )


def _check_ddp_run(folder: Path, command: list[str]) -> None:
    """Run a DDP fit command for one epoch in ``folder``: it succeeds, reports the epoch
    and leaves a ``last.ckpt`` with finite weights."""
    environment = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    result = subprocess.run(
        [*command, *DDP_ARGS, f"--trainer.logger.init_args.save_dir={folder / 'runs'}"],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fit ended after 1 epochs" in result.stderr, result.stderr[-3000:]
    last = folder / "runs/quickstart_ddp/version_0/checkpoints/last.ckpt"
    state = torch.load(last, map_location="cpu", weights_only=True)["state_dict"]
    assert all(value.isfinite().all() for value in state.values())


def check_fsdp_fit(folder: Path, devices: int, width: int) -> None:
    """Lightning's ``FSDPStrategy`` (every ``KANLinear`` wrapped) trains
    ``KAN([width, width, width, 10])`` for 3 steps on ``devices`` GPUs: finite losses, and
    each process holds its 1/devices share of the parameters."""
    out = folder / "fsdp.pt"
    command = [sys.executable, __file__, "fsdp", str(out), str(devices), str(width)]
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = torch.load(out, weights_only=True)
    assert len(report["losses"]) == 3 and all(map(math.isfinite, report["losses"]))
    assert report["local_numel"] * devices >= report["total_numel"]
    assert report["local_numel"] <= report["total_numel"] / devices + 2**20  # sharded


def _fsdp_worker(out: str, devices: int, width: int) -> None:
    import lightning as L
    from lightning.pytorch.strategies import FSDPStrategy
    from torch.utils.data import DataLoader, TensorDataset

    from lightning_kan.tasks import RegressionTask

    class Losses(Callback):
        def __init__(self) -> None:
            self.losses: list[float] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.losses.append(float(outputs["loss"]))

    torch.manual_seed(0)
    task = RegressionTask(KAN([width, width, width, 10]), initial_grid=None)
    total = sum(p.numel() for p in task.parameters())
    data = TensorDataset(torch.rand(256, width) * 2 - 1, torch.randn(256, 10))
    losses = Losses()
    trainer = L.Trainer(
        accelerator="gpu",
        devices=devices,
        strategy=FSDPStrategy(auto_wrap_policy={KANLinear}),
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        callbacks=[losses],
    )
    trainer.fit(task, DataLoader(data, batch_size=32))
    local = sum(p.numel() for p in trainer.strategy.model.parameters())
    if trainer.global_rank == 0:
        report = {"losses": losses.losses, "local_numel": local, "total_numel": total}
        torch.save(report, out)


def check_fully_shard(rank: int, world_size: int, port: int, exit_barrier=None) -> None:
    """torch's FSDP2 ``fully_shard`` on every layer of a KAN (gloo, CPU or GPU): the
    sharded forward and backward equal the unsharded ones; run in each process. With
    ``exit_barrier`` (a ``multiprocessing`` barrier of ``world_size``) no process returns
    before every one has torn its process group down."""
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        torch.manual_seed(0)
        reference = KAN([6, 8, 3], basis="chebyshev")
        net = copy.deepcopy(reference)
        for layer in net.layers:
            fully_shard(layer)
        fully_shard(net)
        x = _uniform(16, 6)  # the same on every process (same seed)
        output = net(x)
        output.square().mean().backward()
        expected = reference(x)
        expected.square().mean().backward()
        assert relative_error(output.detach(), expected.detach()) <= 1e-6
        pairs = zip(net.named_parameters(), reference.parameters(), strict=True)
        for (name, sharded), plain in pairs:
            assert sharded.to_local().numel() < plain.numel() or plain.numel() < world_size
            assert relative_error(sharded.grad.full_tensor(), plain.grad) <= 1e-6, name
        # gloo aborts a process (``terminate called without an active exception``) that
        # tears its group down while the other still has collectives in flight
        dist.barrier()
    finally:
        dist.destroy_process_group()
        # ... or whose peer has already exited and closed its sockets (seen once in
        # about 20 runs on a loaded 2-core machine): wait for every peer's teardown
        if exit_barrier is not None:
            exit_barrier.wait(timeout=120)


if __name__ == "__main__":  # the FSDP worker: python tests/device_checks.py fsdp OUT N WIDTH
    _fsdp_worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    close_process_group()  # together, before exit (gloo may abort otherwise)
