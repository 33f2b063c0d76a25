"""Process-level CPU tuning shared by the outer loop and the evaluation protocol.

Distillation on CPU allocates and frees the same large activation buffers thousands of times (a ConvNet-3 forward
over 256 Fashion-MNIST images holds 128 MB per layer). glibc's malloc hands blocks that large back to the kernel on
``free`` (``mmap`` threshold, heap trimming), so every following allocation page-faults the memory in again: on the
2-core benchmark machine a 256-image DM real-branch forward spent about half its time in the kernel (1.5 M minor
page faults per second of compute). :func:`retain_freed_memory` raises glibc's ``M_MMAP_THRESHOLD`` and
``M_TRIM_THRESHOLD`` so freed blocks stay in the process and are reused; this is what Intel's PyTorch CPU tuning
guide achieves by preloading jemalloc/tcmalloc. The cost is that the resident set does not shrink after a peak.

Set ``DISTILL_MALLOC_TUNING=0`` to leave the allocator alone. On non-glibc systems this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

__all__ = ["retain_freed_memory"]

logger = logging.getLogger(__name__)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_THRESHOLD = 1 << 30  # 1 GiB: larger blocks are rare enough to keep mmap'ed
_STATE: bool | None = None


def retain_freed_memory() -> bool:
    """Keep freed large blocks in the process (glibc ``mallopt``); idempotent. Returns whether it is in effect."""
    global _STATE
    if _STATE is not None:
        return _STATE
    _STATE = False
    if os.environ.get("DISTILL_MALLOC_TUNING", "1").strip().lower() in {"0", "false", "no", "off"}:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl without mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _STATE = bool(mallopt(_M_MMAP_THRESHOLD, _THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _THRESHOLD))
    logger.debug("glibc malloc tuning %s", "on" if _STATE else "refused")
    return _STATE
