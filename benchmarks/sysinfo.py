"""What the report prints at the top: NumPy and Python versions, the machine, the BLAS library and its threads."""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import dataclass, field

import numpy as np

__all__ = ["SystemInfo", "collect_system_info"]

BUSY_CORES = 0.2  # CPU cores in use by other processes above which the header warns
SAMPLE_S = 0.5
_BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


@dataclass
class SystemInfo:
    numpy_version: str
    python_version: str
    machine: str
    cores: int | None
    blas: list[str] = field(default_factory=list)  # one description per BLAS library NumPy loaded
    blas_threads: int | None = None  # from threadpoolctl; None when unknown
    blas_note: str = ""  # e.g. "threadpoolctl not installed"
    env: dict[str, str] = field(default_factory=dict)  # BLAS-related environment variables that are set
    busy_cores: float | None = None  # CPU cores busy with other processes at the start (Linux /proc/stat)

    def lines(self) -> list[str]:
        out = [
            f"NumPy {self.numpy_version}, Python {self.python_version}",
            f"Machine: {self.machine}, {self.cores} cores (os.cpu_count)",
        ]
        if self.blas:
            out += [f"BLAS: {line}" for line in self.blas]
        if self.blas_note:
            out.append(f"BLAS: {self.blas_note}")
        if self.env:
            out.append("Environment: " + ", ".join(f"{k}={v}" for k, v in self.env.items()))
        if self.busy_cores is not None:
            out.append(f"Other processes' CPU use at the start: {self.busy_cores:.2f} cores (sampled for {SAMPLE_S} s)")
            if self.busy_cores > BUSY_CORES:
                out.append(
                    "WARNING: other processes are using the CPU, so the timings below will be noisy and slow. "
                    "Rerun on an idle machine for figures to quote."
                )
        return out

    def as_dict(self) -> dict[str, object]:
        return {
            "numpy": self.numpy_version,
            "python": self.python_version,
            "machine": self.machine,
            "cores": self.cores,
            "blas": self.blas,
            "blas_threads": self.blas_threads,
            "blas_note": self.blas_note,
            "env": self.env,
            "busy_cores": self.busy_cores,
        }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _blas() -> tuple[list[str], int | None, str]:
    """Descriptions of the BLAS libraries loaded in this process, their thread count, and a note."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [], None, "threadpoolctl not installed (pip install threadpoolctl to show the BLAS library)"
    found = [info for info in threadpool_info() if info.get("user_api") == "blas"]
    if not found:
        return [], None, "threadpoolctl found no BLAS library loaded"
    lines = []
    for info in found:
        details = [f"version {info.get('version')}"]
        if info.get("architecture"):
            details.append(f"kernel {info['architecture']}")
        if info.get("threading_layer"):
            details.append(f"threading {info['threading_layer']}")
        details.append(f"{info.get('num_threads')} threads")
        lines.append(f"{info.get('internal_api')} ({', '.join(details)}) {info.get('filepath', '')}".rstrip())
    # Prefer the library NumPy itself ships, should several be loaded.
    numpy_blas = [info for info in found if "numpy" in str(info.get("filepath", ""))] or found
    return lines, int(numpy_blas[0]["num_threads"]), ""


def collect_system_info() -> SystemInfo:
    """Gather the header facts (call it before importing torch, so the BLAS list is NumPy's own)."""
    np.ones((2, 2)) @ np.ones((2, 2))  # make sure NumPy's BLAS is loaded before asking threadpoolctl
    blas, threads, note = _blas()
    return SystemInfo(
        numpy_version=np.__version__,
        python_version=sys.version.split()[0],
        machine=f"{_cpu_model()} ({platform.machine()}, {platform.system()})",
        cores=os.cpu_count(),
        blas=blas,
        blas_threads=threads,
        blas_note=note,
        env={k: os.environ[k] for k in _BLAS_ENV if k in os.environ},
        busy_cores=_busy_cores(SAMPLE_S),
    )


def _cpu_times() -> tuple[int, int]:
    """(total, idle) jiffies of all CPUs from /proc/stat (Linux)."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(v) for v in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    return sum(fields), fields[3] + fields[4]


def _busy_cores(seconds: float) -> float | None:
    """CPU cores kept busy by other processes while this one sleeps ``seconds``; None where not measurable."""
    try:
        total0, idle0 = _cpu_times()
        time.sleep(seconds)
        total1, idle1 = _cpu_times()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (1 - (idle1 - idle0) / (total1 - total0)) * (os.cpu_count() or 1)
