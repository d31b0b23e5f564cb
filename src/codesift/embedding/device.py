"""Where an ONNX embedder runs (``device=auto|cpu|cuda``) and how much GPU memory it may use.

CUDA comes from the optional ``onnxruntime-gpu`` wheel (``pip install 'codesift[gpu]'``),
which replaces ``onnxruntime``: this module only asks onnxruntime which execution
providers it has, and never imports anything CUDA-specific itself.

* ``cpu``: the CPU provider, always.
* ``cuda``: the CUDA provider, or a :class:`ConfigError` that says how to get it. A
  session that silently fell back to the CPU (missing CUDA libraries) is refused too.
* ``auto``: CUDA when onnxruntime has it, else the CPU, and the log says which.

GPU memory is part of the memory guard: a CUDA session registers its limit here
(``gpu_memory_limit``, default 90% of the device), the ONNX runtime's arena is capped at
it, and :func:`gpu_pressure` tells :class:`codesift.pipeline.memory.MemoryGuard` when
the device is over it, so the embed stage waits (with its deadline) instead of failing
an allocation half-way through a batch.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass

from codesift.errors import ConfigError

log = logging.getLogger("codesift.embedding")

DEVICES = ("auto", "cpu", "cuda")
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
GPU_EXTRA_HINT = "pip install 'codesift[gpu]' (onnxruntime-gpu, replacing onnxruntime)"
DEFAULT_GPU_FRACTION = 0.9
# nvidia-smi is a subprocess: its answer is reused for this long, and it has a deadline.
_SMI_CACHE_S = 2.0
_SMI_TIMEOUT_S = 5.0


def available_providers() -> list[str]:
    """onnxruntime's execution providers here; [] when onnxruntime cannot be imported."""
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


def cuda_available() -> bool:
    return CUDA_PROVIDER in available_providers()


def check_device(device: str | None, spec: str) -> str:
    value = (device or "auto").strip().lower()
    if value not in DEVICES:
        raise ConfigError(f"embedder {spec!r}: device must be one of {', '.join(DEVICES)}, got {device!r}",
                          stage="embed")
    return value


def resolve_device(device: str | None, spec: str, *, explicit: bool = False) -> str:
    """``cpu`` or ``cuda`` for ``device``; raise when ``cuda`` is asked for and missing."""
    value = check_device(device, spec)
    if value == "cpu":
        return "cpu"
    if cuda_available():
        return "cuda"
    if value == "cuda":
        raise ConfigError(
            f"embedder {spec!r}: --device cuda, but onnxruntime has no CUDA provider here "
            f"(providers: {', '.join(available_providers()) or 'none'}); {GPU_EXTRA_HINT}, or use --device cpu",
            stage="embed")
    # auto without CUDA: say so (loudly only when the user asked for auto by name).
    (log.warning if explicit else log.info)(
        "embedder %s: no CUDA provider in onnxruntime; running on the CPU (%s for CUDA)", spec, GPU_EXTRA_HINT)
    return "cpu"


def session_providers(device: str, *, gpu_id: int = 0, gpu_mem_limit: int | None = None) -> list:
    if device == "cuda":
        opts: dict[str, object] = {"device_id": gpu_id}
        if gpu_mem_limit:
            opts["gpu_mem_limit"] = int(gpu_mem_limit)
        return [(CUDA_PROVIDER, opts), CPU_PROVIDER]
    return [CPU_PROVIDER]


def check_session_device(session, device: str, spec: str) -> None:
    """onnxruntime falls back to the CPU when CUDA fails to initialise: refuse that."""
    if device == "cuda" and CUDA_PROVIDER not in session.get_providers():
        raise ConfigError(
            f"embedder {spec!r}: the CUDA provider failed to initialise (is the CUDA runtime and cuDNN "
            f"installed and matching onnxruntime-gpu?); the session runs on {session.get_providers()}. "
            "Use --device cpu to run on the CPU", stage="embed")


# -- GPU memory ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GpuMemory:
    used: int
    total: int


def _nvml_memory(gpu_id: int) -> GpuMemory | None:
    try:
        import pynvml  # optional: nvidia-ml-py
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        info = pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(gpu_id))
        return GpuMemory(int(info.used), int(info.total))
    except pynvml.NVMLError as exc:  # no driver, no such GPU: memory unknown, try nvidia-smi
        log.debug("NVML memory query failed: %s", exc)
        return None


def _smi_memory(gpu_id: int) -> GpuMemory | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=memory.used,memory.total", "--format=csv,noheader,nounits", "-i", str(gpu_id)],
            capture_output=True, text=True, timeout=_SMI_TIMEOUT_S, check=True).stdout
        used, total = (int(float(x)) << 20 for x in out.strip().splitlines()[0].split(","))
        return GpuMemory(used, total)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        log.debug("nvidia-smi memory query failed: %s", exc)
        return None


_smi_cache: dict[int, tuple[float, GpuMemory | None]] = {}


def gpu_memory(gpu_id: int = 0) -> GpuMemory | None:
    """Used and total memory of GPU ``gpu_id`` (NVML, else nvidia-smi); None when unknown."""
    found = _nvml_memory(gpu_id)
    if found is not None:
        return found
    now = time.monotonic()
    hit = _smi_cache.get(gpu_id)
    if hit is not None and now - hit[0] < _SMI_CACHE_S:
        return hit[1]
    found = _smi_memory(gpu_id)
    _smi_cache[gpu_id] = (now, found)
    return found


@dataclass(frozen=True)
class GpuBudget:
    label: str  # the embedder spec, for the error line
    gpu_id: int
    limit: int


_budgets: dict[int, GpuBudget] = {}
_budgets_lock = threading.Lock()


def default_gpu_limit(gpu_id: int = 0) -> int | None:
    mem = gpu_memory(gpu_id)
    return int(mem.total * DEFAULT_GPU_FRACTION) if mem is not None else None


def register_gpu_budget(owner: object, budget: GpuBudget) -> None:
    """Watch ``budget`` while ``owner`` (a CUDA embedder) lives."""
    import weakref

    key = id(owner)
    with _budgets_lock:
        _budgets[key] = budget

    def drop() -> None:
        with _budgets_lock:
            _budgets.pop(key, None)

    weakref.finalize(owner, drop)


def gpu_pressure() -> tuple[str, int, int] | None:
    """(what, used bytes, limit bytes) of the first GPU over its budget; None otherwise.

    Cheap when no CUDA embedder is loaded (the usual case): an empty dict lookup.
    """
    with _budgets_lock:
        budgets = list(_budgets.values())
    for b in budgets:
        mem = gpu_memory(b.gpu_id)
        if mem is not None and mem.used > b.limit:
            return f"GPU {b.gpu_id} ({b.label})", mem.used, b.limit
    return None


# -- sessions -------------------------------------------------------------------------------


def make_session(model_path: str, *, threads: int, device: str, spec: str, gpu_mem_limit: int | None = None,
                 queries: bool = False):
    """An onnxruntime session for ``model_path`` on ``device`` (``cpu`` or ``cuda``, resolved).

    ``queries``: the session embeds one short query at a time (a search process). Its
    threads then sleep after each call instead of spinning: a spinning pool keeps the cores
    busy for milliseconds after the call returns, which tripled the matrix product that
    follows (1.7 → 5.1 ms at 22k chunks, measured on 2 cores). An index run keeps spinning:
    its calls come back to back, and spinning there is ~15% faster.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    if queries:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(model_path, sess_options=opts,
                                       providers=session_providers(device, gpu_mem_limit=gpu_mem_limit))
    except Exception as exc:  # onnxruntime raises its own untyped failures: one clear line
        raise ConfigError(f"embedder {spec!r}: cannot load ONNX model {model_path}: {exc}", stage="embed",
                          cause=exc) from exc
    check_session_device(session, device, spec)
    return session


def gpu_limit_for(owner: object, spec: str, limit: int | None, gpu_id: int = 0) -> int | None:
    """The GPU memory limit of a CUDA embedder (given, else 90% of the device), registered
    with the memory guard; None when the device's memory cannot be read (the ONNX arena
    limit then is the only bound, and ``codesift models`` says so)."""
    chosen = limit or default_gpu_limit(gpu_id)
    if chosen:
        register_gpu_budget(owner, GpuBudget(spec, gpu_id, int(chosen)))
    return chosen
