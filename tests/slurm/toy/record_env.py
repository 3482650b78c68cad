"""Write the SLURM job facts a test checks (job id, partition, GPUs) as KEY=VALUE lines."""

import os
import sys

KEYS = ("SLURM_JOB_ID", "SLURM_JOB_PARTITION", "SLURM_STEP_ID", "CUDA_VISIBLE_DEVICES")

with open(sys.argv[1], "w") as out:
    for key in KEYS:
        out.write(f"{key}={os.environ.get(key, '')}\n")
