"""Work around CPUs that advertise Intel AMX but cannot run it.

Some virtual machines (Firecracker guests on Sapphire Rapids hosts, for one) list ``amx_tile``
in ``/proc/cpuinfo`` and let ``arch_prctl(ARCH_REQ_XCOMP_PERM)`` succeed, yet the first tile
instruction raises #UD. A llama.cpp build compiled for such a CPU then puts weights in its AMX
buffer and dies with SIGILL on the first token. ggml only uses AMX after that ``arch_prctl``
call succeeds, so making it fail (EPERM) turns AMX off cleanly and leaves AVX-512/AVX2 in use.

``python -m bench_runner.engine.cpu_quirks -- CMD ...`` installs a seccomp filter that denies
only that ``arch_prctl`` request and then execs CMD (the filter is inherited by CMD and its
children). The reference engine command uses it whenever the CPU advertises AMX.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

ARCH_REQ_XCOMP_PERM = 0x1023
_SYS_ARCH_PRCTL_X86_64 = 158
_AUDIT_ARCH_X86_64 = 0xC000003E

ALLOW_ENV = "BENCH_ENGINE_ALLOW_AMX"


def amx_advertised() -> bool:
    """True when the CPU flags list AMX tiles (Linux x86-64 only)."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return "amx_tile" in line.split()
    except OSError:
        pass
    return False


def needs_amx_guard() -> bool:
    """Disable AMX for the engine when the CPU advertises it, unless ``$BENCH_ENGINE_ALLOW_AMX=1``.

    A probe that runs tile instructions itself passes on the VMs where ggml's AMX kernels still
    die with SIGILL, so there is no cheap reliable test; on a CPU engine used as a reference
    the cost of turning AMX off is small and the cost of a SIGILL is the whole run.
    """
    return amx_advertised() and os.environ.get(ALLOW_ENV, "") != "1"


def guard_command(cmd: list[str]) -> list[str]:
    """``cmd`` wrapped so that AMX is disabled for it (and its children)."""
    return [sys.executable, "-m", "bench_runner.engine.cpu_quirks", "--", *cmd]


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def deny_amx_permission() -> None:
    """Install a seccomp filter: ``arch_prctl(ARCH_REQ_XCOMP_PERM, ...)`` fails with EPERM."""
    ld_abs, jeq, ret = 0x20, 0x15, 0x06  # BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K, BPF_RET|BPF_K
    allow, eperm = 0x7FFF0000, 0x00050000 | 1  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EPERM
    prog = [
        (ld_abs, 0, 0, 4),  # seccomp_data.arch
        (jeq, 0, 4, _AUDIT_ARCH_X86_64),
        (ld_abs, 0, 0, 0),  # seccomp_data.nr
        (jeq, 0, 2, _SYS_ARCH_PRCTL_X86_64),
        (ld_abs, 0, 0, 16),  # low 32 bits of args[0]
        (jeq, 1, 0, ARCH_REQ_XCOMP_PERM),
        (ret, 0, 0, allow),
        (ret, 0, 0, eperm),
    ]
    filters = (_SockFilter * len(prog))(*[_SockFilter(*ins) for ins in prog])
    fprog = _SockFprog(len(prog), filters)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    if libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP) failed")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        print("usage: python -m bench_runner.engine.cpu_quirks -- CMD [ARGS...]", file=sys.stderr)
        return 2
    deny_amx_permission()
    os.execvp(args[0], args)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
