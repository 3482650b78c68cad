"""Facts about CUDA on this machine: the torch build, the NVIDIA driver, whether a GPU works.

``torch.cuda.is_available()`` alone is not enough to trust a GPU: a torch build
without kernels for the card's architecture (CUDA 13 builds have none for
P100/V100) reports the GPU as available and fails at the first kernel with "no
kernel image is available for execution on the device".  So a device counts as
usable only when a tiny kernel has run on it and its compute capability is
covered by the build.  Everything here is read-only and never raises: these
facts go into error messages and ``speciesgan doctor``, which must work exactly
when CUDA does not.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch

NO_DRIVER = "no NVIDIA driver found"
DRIVER_QUERY_TIMEOUT_SECONDS = 15.0
"""nvidia-smi can hang on a wedged GPU; a stage must still fail within a minute."""

PROC_DRIVER_VERSION = Path("/proc/driver/nvidia/version")
_VERSION_WORD = re.compile(r"\s(\d+\.\d+(?:\.\d+)*)(?=\s|$)")


def cuda_build() -> str:
    """The CUDA version this torch was built for, e.g. ``"12.6"``, or ``"CPU-only build"``."""
    return torch.version.cuda or "CPU-only build"


def cudnn_version() -> str:
    """cuDNN as ``major.minor.patch``, or why there is none."""
    try:
        version = torch.backends.cudnn.version()
    except Exception:  # a broken CUDA install must not stop the report
        version = None
    if not version:
        return "not available"
    major, rest = divmod(int(version), 10000) if version >= 10000 else divmod(int(version), 1000)
    minor, patch = divmod(rest, 100)
    return f"{major}.{minor}.{patch}"


def parse_proc_driver_version(text: str) -> str | None:
    """The driver version from ``/proc/driver/nvidia/version``'s NVRM line, if any.

    Both layouts seen in the wild are handled: "... Kernel Module  535.104.05  Sat ..."
    and the open modules' "... Open Kernel Module for x86_64  550.54.14  Release ...".
    """
    for line in text.splitlines():
        if line.startswith("NVRM version"):
            match = _VERSION_WORD.search(line)
            if match:
                return match.group(1)
    return None


def driver_version() -> str:
    """The NVIDIA driver version (``nvidia-smi`` first, then /proc), else :data:`NO_DRIVER`."""
    smi = shutil.which("nvidia-smi")
    if smi is not None:
        try:
            done = subprocess.run(
                [smi, "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=DRIVER_QUERY_TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            done = None
        if done is not None and done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip().splitlines()[0].strip()
    try:
        found = parse_proc_driver_version(PROC_DRIVER_VERSION.read_text())
    except OSError:
        found = None
    return found or NO_DRIVER


def arch_list() -> list[str]:
    """The GPU architectures this torch build has kernels for (``sm_80``, ``compute_90``...)."""
    try:
        return list(torch.cuda.get_arch_list())
    except Exception:  # a CPU-only or broken build has none
        return []


def capability_supported(capability: tuple[int, int], archs: Sequence[str]) -> bool:
    """Whether a build with kernels for ``archs`` can run on a GPU of ``capability``.

    Binary kernels (``sm_XY``) run on the same major architecture at an equal or
    higher minor version (sm_80 code runs on an 8.6 card); PTX (``compute_XY``)
    is compiled by the driver for any card at or above it.  An empty list means
    torch could not say, which is not evidence of a mismatch.
    """
    if not archs:
        return True
    major, minor = capability
    for arch in archs:
        kind, _, digits = arch.partition("_")
        if not digits.isdigit() or len(digits) < 2:
            continue
        arch_major, arch_minor = int(digits[:-1]), int(digits[-1])
        if kind == "sm" and arch_major == major and arch_minor <= minor:
            return True
        if kind == "compute" and (arch_major, arch_minor) <= (major, minor):
            return True
    return False


def cuda_problem(index: int = 0) -> str | None:
    """Why CUDA device ``index`` cannot be used by this torch, or None when it can.

    Runs a tiny kernel on it: the only reliable test that the build has code
    for the card and that the driver accepts this build.
    """
    try:
        # torch explains a driver that is too old only in a warning: keep its words
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            available = torch.cuda.is_available()
        if not available:
            why = "; ".join(str(warning.message).strip() for warning in said)
            return "torch finds no CUDA device (torch.cuda.is_available() is False" + (
                f": {why})" if why else ")"
            )
        count = torch.cuda.device_count()
        if index >= count:
            return f"CUDA device {index} requested but only {count} visible"
        capability = torch.cuda.get_device_capability(index)
        archs = arch_list()
        if not capability_supported(capability, archs):
            return (
                f"{torch.cuda.get_device_name(index)} has compute capability "
                f"{capability[0]}.{capability[1]}, which this build has no kernels for "
                f"(it has {' '.join(archs)})"
            )
        probe = torch.arange(4, device=torch.device("cuda", index), dtype=torch.float32)
        total = float((probe * 2).sum().item())
        torch.cuda.synchronize(index)
    except Exception as exc:  # any failure here means "not usable"
        return f"a test kernel failed: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
    if total != 12.0:
        return f"a test kernel computed {total} instead of 12"
    return None


def describe_gpu(index: int) -> str:
    """``NVIDIA A100-SXM4-40GB (compute capability 8.0, 39.4 GiB)`` for the log and doctor."""
    try:
        props = torch.cuda.get_device_properties(index)
        return (
            f"{props.name} (compute capability {props.major}.{props.minor}, "
            f"{props.total_memory / 2**30:.1f} GiB)"
        )
    except Exception as exc:  # the report must not fail on a broken GPU
        return f"unreadable ({type(exc).__name__}: {exc})"
