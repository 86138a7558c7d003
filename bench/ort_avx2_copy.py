"""Copy the installed onnxruntime into DIR with the AVX-512 branch of its kernel library (MLAS) switched off,
so that a machine WITH AVX-512 / VNNI runs the kernels an AVX2-only x86 CPU gets (the question is
about an AVX2 CPU without VNNI; the machine this was run on turned out to have AVX-512 VNNI).

MLAS picks its kernels once, from CPUID, in MLAS_PLATFORM's constructor; no option or environment
variable changes that. This flips the one conditional jump that enters the AVX-512 block
(`test $0x10000,%r10d` = CPUID.7.EBX.AVX512F; `je` -> `jmp`) in a COPY; the installed package is not
touched. What stays: the AVX2/FMA3 sgemm, the AVX2 u8s8 QGEMM (vpmaddubsw + vpmaddwd, int16 saturation
included), 8-wide NCHWc blocks. Only onnxruntime 1.32.0's x86-64 Linux wheel is known: the byte pattern
must occur exactly once, otherwise nothing is written.

    .venv/bin/python bench/ort_avx2_copy.py /tmp/ort_avx2
    PYTHONPATH=/tmp/ort_avx2 .venv/bin/python bench/int8_settings.py   # "MLAS dispatch: AVX2 (patched ...)"
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

# test $0x10000,%r10d ; je +N ; mov %r8,%rax ; not %rax ; test $0xe0,%al   (AVX512F and XCR0 opmask/ZMM state)
PATTERN = re.compile(rb"\x41\xf7\xc2\x00\x00\x01\x00(\x74).\x4c\x89\xc0\x48\xf7\xd0\xa8\xe0", re.DOTALL)
MARKER = "KDEDGE_AVX2_DISPATCH"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to put the patched 'onnxruntime' package in")
    args = parser.parse_args()
    import onnxruntime

    source = Path(onnxruntime.__file__).parent
    if (source / MARKER).exists():
        sys.exit(f"{source} is already a patched copy")
    libraries = list((source / "capi").glob("onnxruntime_pybind11_state*.so"))
    if len(libraries) != 1:
        sys.exit(f"expected one onnxruntime_pybind11_state*.so in {source / 'capi'}, found {len(libraries)}")
    data = bytearray(libraries[0].read_bytes())
    hits = list(PATTERN.finditer(data))
    if len(hits) != 1:
        sys.exit(
            f"onnxruntime {onnxruntime.__version__}: the AVX-512 check was found {len(hits)} times, not "
            "once; this script only knows the 1.32.0 x86-64 Linux build"
        )
    data[hits[0].start(1)] = 0xEB  # je -> jmp: never enter the AVX-512 block
    target = args.out / "onnxruntime"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    (target / "capi" / libraries[0].name).write_bytes(bytes(data))
    (target / MARKER).write_text(f"patched at file offset {hits[0].start(1):#x} of {libraries[0].name}\n")
    print(
        f"{target}: onnxruntime {onnxruntime.__version__} with AVX2 kernel dispatch "
        f"(offset {hits[0].start(1):#x}); use PYTHONPATH={args.out}"
    )


if __name__ == "__main__":
    main()
