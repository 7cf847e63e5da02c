"""DeepSpeed's C++ ops: the one a training run never needs, and a clear stop when one it needs cannot be built.

DeepSpeed compiles its ops with torch's JIT extension builder on first use, unless they were prebuilt when
DeepSpeed was installed (a plain `pip install deepspeed` prebuilds none). Compiling needs a C++ compiler
and takes about a minute per op.
"""

from __future__ import annotations

import shutil

from alum.errors import UserError
from alum.training import deepspeed_internals


def skip_shared_memory_comm() -> None:
    """Keep DeepSpeed from compiling its shared-memory collective op (`deepspeed_shm_comm`).

    On a CPU, DeepSpeed (0.19) builds that op whenever it sets up its communication backend, for one process
    or many, and dies with a traceback where there is no compiler. The op serves only
    `inference_all_reduce` (tensor-parallel inference); every collective of training goes through
    torch.distributed (gloo on CPUs), so training loses nothing without it."""
    deepspeed_internals.mark_op_unbuildable("ShareMemCommBuilder")


def require_op(builder_name: str, needed_by: str) -> None:
    """Stop with one line if `needed_by` uses an op that must be compiled here and no C++ compiler is found,
    rather than with the compiler's traceback from deep inside DeepSpeed."""
    from deepspeed.accelerator import get_accelerator
    from torch.utils.cpp_extension import get_cxx_compiler

    builder = get_accelerator().create_op_builder(builder_name)
    if builder is None or deepspeed_internals.op_prebuilt(builder):
        return
    compiler = get_cxx_compiler()
    if shutil.which(compiler) is None:
        raise UserError(
            f"{needed_by} uses DeepSpeed's {builder.NAME} op, which DeepSpeed compiles on first use, and no C++ "
            f"compiler was found ('{compiler}'): install one (e.g. g++) or set CXX to one"
        )
