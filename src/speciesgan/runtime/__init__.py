"""Where and how a stage runs: device choice, CUDA, SLURM, preemption, launch, doctor.

Importing this package imports nothing else (``speciesgan.runtime.cpu_sharing``
must run before torch is imported).
"""
