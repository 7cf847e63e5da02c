"""The GPU tests (tests/gpu/): everything here is marked `gpu` and skipped where CUDA is absent (the skip is
tests/conftest.py's). They run on one GPU, in the precisions users train in, and each takes seconds.

Set before any cuBLAS handle exists (this file is imported at collection): a fixed cuBLAS workspace, so that
matrix products give the same bits run after run, which the exact-resume test relies on."""

from __future__ import annotations

import os

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
