"""Builds the optional C kernels of the CPU feature expansion (lightning_kan/native).

Everything else about the package is in pyproject.toml. The extension is plain C with
no torch headers, so it needs only a C compiler; ``optional=True`` lets the install go
on without one (the layers then use their eager PyTorch path, same results).
"""

import platform

from setuptools import Extension, setup

SOURCE = "lightning_kan/native/_kernels.c"
# no errno and no FP traps: lets gcc turn the kernels' selects into vector blends
FLAGS = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-fopenmp"]


def kernels(module: str, *flags: str) -> Extension:
    return Extension(
        f"lightning_kan.native.{module}",
        sources=[SOURCE],
        extra_compile_args=[*FLAGS, *flags, f"-DLK_MODULE={module}"],
        extra_link_args=["-fopenmp"],
        optional=True,
    )


# any x86-64 (or other) CPU, and a second build for AVX2 + FMA, loaded where the CPU has them
EXTENSIONS = [kernels("_kernels")]
if platform.machine().lower() in ("x86_64", "amd64"):
    EXTENSIONS.append(kernels("_kernels_avx2", "-mavx2", "-mfma"))

setup(ext_modules=EXTENSIONS)
