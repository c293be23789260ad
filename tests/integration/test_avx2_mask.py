"""bench/avx2_only.py's mask, on a small library of its own: a real cpuid, run in a real process
under the real LD_AUDIT library, reports AVX-512 and AVX-VNNI absent and AVX2 still there. (The
bench masks every library of the venv the same way; scanning all of them takes minutes.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import avx2_only  # noqa: E402

PROBE = r"""
#include <cpuid.h>
unsigned leaf7_ebx(void) { unsigned a, b, c, d; __cpuid_count(7, 0, a, b, c, d); return b; }
unsigned leaf7_1_eax(void) { unsigned a, b, c, d; __cpuid_count(7, 1, a, b, c, d); return a; }
"""
AVX2 = 1 << 5  # leaf 7 EBX
AVX512_EBX = sum(1 << bit for bit in (16, 17, 21, 26, 27, 28, 30, 31))  # F, DQ, IFMA, PF, ER, CD, BW, VL
AVX_VNNI = 1 << 4  # leaf 7 subleaf 1 EAX
CALL = """import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.leaf7_ebx.restype = lib.leaf7_1_eax.restype = ctypes.c_uint
print(lib.leaf7_ebx(), lib.leaf7_1_eax())"""


@pytest.fixture
def probe(tmp_path, monkeypatch) -> Path:
    if not (shutil.which("gcc") and shutil.which("objdump")):
        pytest.fail("the mask needs gcc and objdump (apt-get install gcc binutils)")
    monkeypatch.setattr(avx2_only, "CACHE", tmp_path / "cache")
    source = tmp_path / "probe.c"
    source.write_text(PROBE)
    library = tmp_path / "libprobe.so"
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    return library


def features(library: Path, env: dict[str, str]) -> tuple[int, int]:
    result = subprocess.run([sys.executable, "-c", CALL, str(library)], env=env, capture_output=True, text=True, check=True)
    ebx, eax = map(int, result.stdout.split())
    return ebx, eax


def test_the_mask_hides_avx512_and_vnni_from_a_librarys_cpuid(probe):
    sites = avx2_only.sites_of(probe)
    assert [line.split()[2] for line in sites] == ["cpuid", "cpuid"]
    listing = avx2_only.CACHE / "sites.txt"
    listing.write_text("\n".join(sites) + "\n")
    plain = features(probe, dict(os.environ))
    masked = features(probe, dict(os.environ, LD_AUDIT=str(avx2_only.audit_library()), CPUID_MASK_SITES=str(listing)))
    assert plain[0] & AVX2, "the probe reads this CPU's leaf 7"
    assert masked[0] & AVX2 and not masked[0] & AVX512_EBX
    assert masked[0] == plain[0] & ~AVX512_EBX  # the other features of leaf 7 read as this CPU's
    assert not masked[1] & AVX_VNNI
