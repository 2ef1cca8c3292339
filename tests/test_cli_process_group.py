"""The CLI tears a DDP process group down itself, with every process alive (gloo aborted a
process with exit status -6 after a complete fit when the interpreter's exit did it)."""

import torch.distributed as dist

from lightning_kan.utils import close_process_group


def test_the_process_group_is_destroyed_after_a_command(tmp_path):
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        close_process_group()
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_without_a_process_group_nothing_happens():
    assert not dist.is_initialized()
    close_process_group()
    assert not dist.is_initialized()
