"""DeepSpeed's C++ ops: the one a training run never needs, and a clear stop when one it needs cannot be built.

DeepSpeed compiles its ops with torch's JIT extension builder on first use, unless they were prebuilt when
DeepSpeed was installed (a plain `pip install deepspeed` prebuilds none). Compiling needs a C++ compiler
and takes about a minute per op.
"""

from __future__ import annotations

import shutil

from alum.errors import UserError


def skip_shared_memory_comm() -> None:
    """Keep DeepSpeed from compiling its shared-memory collective op (`deepspeed_shm_comm`).

    On a CPU, DeepSpeed (0.19) builds that op whenever it sets up its communication backend, for one process
    or many, and dies with a traceback where there is no compiler. The op serves only
    `inference_all_reduce` (tensor-parallel inference); every collective of training goes through
    torch.distributed (gloo on CPUs), so training loses nothing without it. DeepSpeed builds it only if its
    per-process table of compatible ops says so, and that table is a dict kept for the life of the
    process: marking the op incompatible there is the switch."""
    import deepspeed.ops
    from deepspeed.accelerator import get_accelerator

    builder = get_accelerator().create_op_builder("ShareMemCommBuilder")
    if builder is not None:  # accelerators other than the CPU have no such op
        deepspeed.ops.__compatible_ops__[builder.NAME] = False


def require_op(builder_name: str, needed_by: str) -> None:
    """Stop with one line if `needed_by` uses an op that must be compiled here and no C++ compiler is found,
    rather than with the compiler's traceback from deep inside DeepSpeed."""
    from deepspeed.accelerator import get_accelerator
    from deepspeed.git_version_info import accelerator_name, installed_ops
    from torch.utils.cpp_extension import get_cxx_compiler

    accelerator = get_accelerator()
    builder = accelerator.create_op_builder(builder_name)
    if builder is None:
        return
    # the condition under which DeepSpeed loads the prebuilt op instead of compiling it
    if installed_ops.get(builder.NAME, False) and accelerator_name == accelerator.device_name():
        return
    compiler = get_cxx_compiler()
    if shutil.which(compiler) is None:
        raise UserError(
            f"{needed_by} uses DeepSpeed's {builder.NAME} op, which DeepSpeed compiles on first use, and no C++ "
            f"compiler was found ('{compiler}'): install one (e.g. g++) or set CXX to one"
        )
