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


# any CPU; on x86-64 also AVX2 + FMA and AVX-512 builds, each loaded where the CPU has them.
# AVX-512 with 512-bit vectors: the kernels' lane loops (16 inputs a vector) ran 1.3-1.9x
# faster than the AVX2 build on a Sapphire Rapids core (benchmarks/README.md).
AVX512 = ["-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mprefer-vector-width=512"]
EXTENSIONS = [kernels("_kernels")]
if platform.machine().lower() in ("x86_64", "amd64"):
    EXTENSIONS.append(kernels("_kernels_avx2", "-mavx2", "-mfma"))
    EXTENSIONS.append(kernels("_kernels_avx512", "-mavx2", "-mfma", *AVX512))

setup(ext_modules=EXTENSIONS)
