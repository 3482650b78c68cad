"""Idle OpenMP threads yield the CPU quickly, so jobs sharing a node do not stall each other.

torch's CPU kernels run on OpenMP threads (GNU libgomp in the PyPI wheels).  By
default an idle libgomp thread spins for about 300,000 iterations before it
sleeps, which is right for a process that owns its cores and wrong where several
torch processes share them: Snakemake runs jobs side by side, SLURM packs jobs
onto shared nodes, a test suite runs a pipeline next to its tests.  The spinning
threads then burn the time slices the other processes' threads wait for.

Measured on a 2-core machine, an EfficientNet-Lite0 forward and backward at 2
threads (``python benchmarks/cpu_sharing.py``):

===========================  ===========  ==========================
libgomp setting              one process  two processes side by side
===========================  ===========  ==========================
default                      0.28 s       0.98 s
``GOMP_SPINCOUNT=3000``      0.28 s       0.58 s
``OMP_WAIT_POLICY=PASSIVE``  0.34 s       0.43 s
===========================  ===========  ==========================

The short spin costs a few percent alone and saves most of the loss when shared;
it changes no result, only how idle threads wait.  A user's own
``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY`` is left alone.
"""

from __future__ import annotations

import os

SPIN_COUNT = "3000"


def share_cpus(environ: os._Environ[str] | dict[str, str] = os.environ) -> None:
    """Set a short OpenMP spin before torch starts its threads, unless the user chose one.

    Must run before the OpenMP runtime initialises (before torch's first parallel
    region); the package's ``__init__`` calls it.  Child processes (torchrun ranks,
    the jobs of a Snakemake run started from Python) inherit it.
    """
    if "GOMP_SPINCOUNT" not in environ and "OMP_WAIT_POLICY" not in environ:
        environ["GOMP_SPINCOUNT"] = SPIN_COUNT
