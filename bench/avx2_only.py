"""Run a command as if this CPU had AVX2 and FMA but no AVX-512, AVX-VNNI or AMX (an AMD Zen 2/3 EPYC, most laptops).

    .venv/bin/python bench/avx2_only.py --check
    .venv/bin/python bench/avx2_only.py -- .venv/bin/python bench/ingest_bench.py --ndcg

What it changes, for the command and every process it starts (Linux, x86-64, as root):
- cpuid and xgetbv: each such instruction in the ELF libraries under this Python's prefix (site-packages
  and lib-dynload: ONNX Runtime's MLAS, torch's ATen/oneDNN/MKL, OpenBLAS, numpy, the Rust and C++
  extensions) is found with objdump (listing cached in ~/.cache/rag/avx2-only, keyed by file size and
  mtime) and, through an LD_AUDIT library (bench/avx2_only.c, built here with gcc), made to report the
  features above as absent before the library's initializers run. Those libraries then pick their
  AVX2 kernels, which run on this CPU at its real speed;
- glibc's own string functions: GLIBC_TUNABLES glibc.cpu.hwcaps without the AVX-512 variants;
- /proc/cpuinfo (which rag reads to decide on bfloat16): a copy without those flags, bind-mounted in a
  private mount namespace (unshare -m).

What it cannot change: the cores themselves (their clock, caches, and how wide they execute 256-bit
instructions). A figure measured under it is this machine's AVX2 code path, not another machine's
speed; the ratio of two programs both run under it is the comparison that carries over.

`--check` prints what ONNX Runtime, torch and /proc/cpuinfo see, and the float32 and int8 rates of one
ONNX Runtime MatMul, with and without the mask.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "avx2_only.c"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rag" / "avx2-only"
MASKED_FLAGS = re.compile(r"^(avx512\w*|amx\w*|avx_vnni\w*|avx_ifma|avx_ne_convert)$")
GLIBC_HWCAPS = "glibc.cpu.hwcaps=-AVX512F,-AVX512CD,-AVX512ER,-AVX512PF,-AVX512VL,-AVX512DQ,-AVX512BW,-AVX_VNNI"
SITE = re.compile(rb"^\s*([0-9a-f]+):\s+(cpuid|xgetbv)\b", re.M)


def audit_library() -> Path:
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    built = CACHE / f"cpuid_mask-{digest}.so"
    if not built.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["gcc", "-O2", "-Wall", "-shared", "-fPIC", "-o", str(built), str(SOURCE)], check=True)
    return built


def elf_libraries() -> list[Path]:
    roots = {Path(sysconfig.get_paths()["purelib"]), Path(sysconfig.get_paths()["platlib"]), Path(sysconfig.get_paths()["stdlib"]) / "lib-dynload"}
    found = set()
    for root in roots:
        for path in root.rglob("*.so*"):
            if path.is_file() and not path.is_symlink() and _is_elf(path):
                found.add(path.resolve())
    return sorted(found)


def _is_elf(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(4) == b"\x7fELF"


def sites_of(library: Path) -> list[str]:
    stat = library.stat()
    key = hashlib.sha256(f"{library}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:24]
    cached = CACHE / "sites" / f"{key}.json"
    if cached.exists():
        return json.loads(cached.read_text())
    disassembly = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(library)], capture_output=True, check=False).stdout
    lines = [f"{library} {address.decode()} {kind.decode()}" for address, kind in SITE.findall(disassembly)]
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(lines))
    return lines


def site_listing() -> Path:
    libraries = elf_libraries()
    print(f"avx2_only: finding cpuid in {len(libraries)} libraries (cached after the first run)", file=sys.stderr)
    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        lines = [line for per_library in pool.map(sites_of, libraries) for line in per_library]
    listing = CACHE / "sites.txt"
    listing.write_text("\n".join(lines) + "\n")
    print(f"avx2_only: {len(lines)} cpuid/xgetbv instructions masked", file=sys.stderr)
    return listing


def masked_cpuinfo() -> Path:
    kept = []
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            name, flags = line.split(":", 1)
            line = f"{name}: " + " ".join(flag for flag in flags.split() if not MASKED_FLAGS.match(flag))
        kept.append(line)
    path = CACHE / "cpuinfo"
    path.write_text("\n".join(kept) + "\n")
    return path


def masked_command(command: list[str]) -> tuple[list[str], dict[str, str]]:
    for tool in ("gcc", "objdump", "unshare", "mount"):
        if not shutil.which(tool):
            raise SystemExit(f"avx2_only needs {tool}: apt-get install binutils gcc util-linux mount")
    env = dict(os.environ, LD_AUDIT=str(audit_library()), CPUID_MASK_SITES=str(site_listing()), GLIBC_TUNABLES=GLIBC_HWCAPS)
    cpuinfo = masked_cpuinfo()
    script = 'mount --bind "$0" /proc/cpuinfo && exec "$@"'
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, str(cpuinfo), *command], env


CHECK = r"""
import time, numpy as np, onnxruntime as ort, torch
from pathlib import Path
from onnx import TensorProto, helper, numpy_helper
flags = next(l for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("flags")).split()
print("cpuinfo avx512f/avx512_bf16/avx_vnni:", [f in flags for f in ("avx512f", "avx512_bf16", "avx_vnni")])
print("torch cpu capability:", torch.backends.cpu.get_cpu_capability())
M, K, N = 4096, 384, 1536
def rate(op, x_type, w):
    graph = helper.make_graph([helper.make_node(op, ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", x_type, [M, K])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT if op == "MatMul" else TensorProto.INT32, [M, N])],
        [numpy_helper.from_array(w, "w")])
    options = ort.SessionOptions(); options.intra_op_num_threads = 2
    session = ort.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString(), options, providers=["CPUExecutionProvider"])
    x = np.random.randn(M, K).astype(np.float32) if op == "MatMul" else np.random.randint(0, 255, (M, K)).astype(np.uint8)
    session.run(None, {"x": x}); started = time.perf_counter()
    for _ in range(10): session.run(None, {"x": x})
    return round(2 * M * K * N * 10 / (time.perf_counter() - started) / 1e9)
print("onnxruntime MatMul float32 GFLOP/s:", rate("MatMul", TensorProto.FLOAT, np.random.randn(K, N).astype(np.float32)))
print("onnxruntime MatMulInteger u8s8 GOP/s:", rate("MatMulInteger", TensorProto.UINT8, np.random.randint(-64, 64, (K, N)).astype(np.int8)))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="show what the libraries see, unmasked then masked")
    parser.add_argument("command", nargs="*", help="the command to run (after --)")
    args = parser.parse_args()
    if args.check:
        print("== this CPU", flush=True)
        subprocess.run([sys.executable, "-c", CHECK], check=True)
        print("== as AVX2-only", flush=True)
        command, env = masked_command([sys.executable, "-c", CHECK])
        return subprocess.run(command, env=env).returncode
    if not args.command:
        parser.error("give a command after --, or --check")
    command, env = masked_command(args.command)
    return subprocess.run(command, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
