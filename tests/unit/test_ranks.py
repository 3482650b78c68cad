"""Where the processes of a distributed training run sit, from the launcher's environment.

Users rely on: ``srun`` inside ``sbatch --ntasks N`` giving N ranks that find each
other with nothing set by hand, on one node or several; a batch script of such a
job that runs training without srun staying one process (not waiting forever for
a second rank); ranks on a node splitting the allocation's CPUs instead of each
taking all of them; and each rank getting its own GPU whether a task sees all of
the node's GPUs or only its own.  The environments below are the variables SLURM
and torchrun set (seen on the test cluster: tests/e2e/test_slurm.py runs the real thing).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from speciesgan.data.dataset import load_split, open_split
from speciesgan.gan.ranks import (
    PORT_BASE,
    cpus_per_rank,
    expand_tasks_per_node,
    first_host,
    gpu_index,
    layout_from_env,
    srun_rendezvous,
    threads_for_rank,
)
from tests.unit.test_gan import write_manifest

BATCH_OF_NTASKS_2 = {  # sbatch --ntasks=2 --nodes=1: the batch script itself
    "SLURM_JOB_ID": "14", "SLURM_NTASKS": "2", "SLURM_PROCID": "0", "SLURM_LOCALID": "0",
    "SLURM_CPUS_ON_NODE": "2", "SLURM_TASKS_PER_NODE": "2", "SLURM_NODEID": "0",
    "SLURM_JOB_NODELIST": "vm",
}  # fmt: skip
SRUN_TASK_1 = {  # ... and task 1 of `srun` in it
    **BATCH_OF_NTASKS_2, "SLURM_PROCID": "1", "SLURM_LOCALID": "1", "SLURM_STEP_ID": "0",
    "SLURM_STEP_NUM_TASKS": "2", "SLURM_STEP_TASKS_PER_NODE": "2", "SLURM_STEP_NODELIST": "vm",
}  # fmt: skip


def test_batch_script_without_srun_is_one_process() -> None:
    assert layout_from_env(BATCH_OF_NTASKS_2) is None
    assert layout_from_env({}) is None
    assert threads_for_rank(8, None) == 8  # a single process keeps --threads exactly


def test_srun_tasks_become_ranks_that_meet_on_the_first_node() -> None:
    layout = layout_from_env(SRUN_TASK_1)
    assert layout is not None
    assert (layout.launcher, layout.world_size, layout.rank, layout.local_rank) == ("srun", 2, 1, 1)
    assert layout.local_world_size == 2
    assert cpus_per_rank(layout, SRUN_TASK_1)[0] == 1  # 2 CPUs on the node, 2 tasks there
    assert srun_rendezvous(SRUN_TASK_1) == {"MASTER_ADDR": "vm", "MASTER_PORT": str(PORT_BASE + 14)}
    # values set by hand win
    given = {**SRUN_TASK_1, "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"}
    assert srun_rendezvous(given) == {}


def test_several_nodes() -> None:
    """Rank 5 of 8: 4 tasks per node, --cpus-per-task 8, second node of gpu[07-08]."""
    env = {
        "SLURM_JOB_ID": "123456", "SLURM_STEP_NUM_TASKS": "8", "SLURM_PROCID": "5",
        "SLURM_LOCALID": "1", "SLURM_NODEID": "1", "SLURM_STEP_TASKS_PER_NODE": "4(x2)",
        "SLURM_CPUS_PER_TASK": "8", "SLURM_CPUS_ON_NODE": "32",
        "SLURM_STEP_NODELIST": "gpu[07-08]", "SLURM_JOB_NODELIST": "gpu[07-08]",
    }  # fmt: skip
    layout = layout_from_env(env)
    assert layout is not None
    assert (layout.world_size, layout.rank, layout.local_rank, layout.local_world_size) == (
        8, 5, 1, 4,
    )  # fmt: skip
    cpus, _ = cpus_per_rank(layout, env)
    assert cpus == min(8, len(os.sched_getaffinity(0)))  # never more than this process may use
    rendezvous = srun_rendezvous(env)
    assert rendezvous["MASTER_ADDR"] == "gpu07"
    assert rendezvous["MASTER_PORT"] == str(PORT_BASE + 123456 % 20000)


def test_torchrun_processes_share_their_task_cpus() -> None:
    """gan.gpus: 4 under the profile: one task with --cpus-per-task 8, four processes."""
    env = {
        "WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "2", "LOCAL_WORLD_SIZE": "4",
        "TORCHELASTIC_RUN_ID": "x", "SLURM_CPUS_PER_TASK": "8", "SLURM_STEP_NUM_TASKS": "1",
    }  # fmt: skip
    layout = layout_from_env(env)
    assert layout is not None and layout.launcher == "torchrun" and layout.share_task == 4
    usable = len(os.sched_getaffinity(0))
    assert cpus_per_rank(layout, env)[0] == max(1, min(8, usable) // 4)


def test_slurm_node_lists_and_task_counts() -> None:
    assert expand_tasks_per_node("2(x3),1") == [2, 2, 2, 1]
    assert expand_tasks_per_node("4") == [4]
    for nodelist, first in [("vm", "vm"), ("node[03-05,9]", "node03"), ("a1,b[2-3]", "a1")]:
        assert first_host(nodelist) == first


def test_each_rank_gets_its_own_gpu() -> None:
    assert gpu_index(3, {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}) == 3  # all GPUs visible
    assert gpu_index(3, {"CUDA_VISIBLE_DEVICES": "5"}) == 0  # --gpus-per-task 1
    assert gpu_index(1, {}) == 1


def test_mapped_split_gathers_what_loading_gives(tmp_path: Path) -> None:
    """The memory-mapped split and the loaded one hold the same crops, labels and order."""
    manifest = write_manifest(tmp_path, per_species=5)
    loaded, mapped = load_split(manifest, "train"), open_split(manifest, "train")
    assert len(mapped) == len(loaded.labels) == 12
    assert torch.equal(mapped.labels, loaded.labels)
    index = np.array([11, 0, 5, 5, 3])
    assert torch.equal(mapped.gather(index), loaded.images[index])
    assert mapped.gather(index).is_contiguous()
    assert all(isinstance(shard, np.memmap) for shard in mapped.shards)
