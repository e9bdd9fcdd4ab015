"""What a switch costs in memory, as the page shows it: this process's resident set
(RSS, from /proc), and on CUDA its GPU memory as the driver counts it (nvidia-smi),
since onnxruntime's arena keeps what it freed and only the driver's view is honest."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class Memory:
    rss: int  # bytes
    gpu: int | None  # bytes, None when not on CUDA or not measurable


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def gpu_bytes() -> int | None:
    """This process's GPU memory per nvidia-smi, None without one."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return None
    try:
        listed = subprocess.run([tool, "--query-compute-apps=pid,used_memory",
                                 "--format=csv,noheader,nounits"], capture_output=True,
                                text=True, timeout=5, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    used = [int(mib) << 20 for pid, mib in (line.split(", ") for line in listed.splitlines()
                                             if ", " in line) if int(pid) == os.getpid()]
    return sum(used) if used else None


def measure(on_cuda: bool) -> Memory:
    return Memory(rss_bytes(), gpu_bytes() if on_cuda else None)
