"""The one eBPF instruction encoder: opcodes and a small assembler.

pyct writes its eBPF programs by hand -- the cgroup v2 device filter
(``virt.cgroups.devices_bpf``) and the ports' and bridges' tc filters
(``virt.network.antispoof``, and security groups after it) -- so they
share this encoder: ``Program`` collects instructions (``struct
bpf_insn``: opcode, dst and src registers, a signed 16-bit offset and a
signed 32-bit immediate), resolves forward jumps to labels and returns
the bytes ``bpf.prog_load`` hands to the kernel. It checks what the
verifier would refuse late and obscurely: a jump out of range, an
unknown label, an immediate that does not fit 32 bits.
"""

from __future__ import annotations

import struct

# ALU/ALU64: operation | source (K: immediate, X: register) | class
MOV64_X = 0xBF     # dst = src
MOV64_K = 0xB7     # dst = imm
MOV32_X = 0xBC     # dst = (u32)src
ADD32_K = 0x04     # dst = (u32)(dst + imm)
AND32_K = 0x54     # dst = (u32)dst & imm
RSH32_K = 0x74     # dst = (u32)dst >> imm
# Loads: LDX_W dst = *(u32 *)(src + off); LD_ABS_* r0 = packet[imm]
# in network order (socket-filter style packet access, r6 = ctx).
LDX_W = 0x61
LD_ABS_W = 0x20
LD_ABS_H = 0x28
LD_ABS_B = 0x30
# 64-bit compares (JMP class) and 32-bit ones (JMP32: the immediate is
# not sign-extended to 64 bits).
JA = 0x05
JNE_K = 0x55
JNE_X = 0x5D
JMP32_JEQ_K = 0x16
JMP32_JNE_K = 0x56
JMP32_JLT_K = 0xA6
JMP32_JGT_K = 0x26
JMP32_JSET_K = 0x46  # jump if dst & imm
EXIT = 0x95
INSN_SIZE = 8


def _s32(value: int) -> int:
    """An immediate as the signed 32 bits the instruction holds (an
    unsigned constant such as an IPv4 address wraps)."""
    if not -(1 << 31) <= value < (1 << 32):
        raise ValueError(f"eBPF immediate {value} does not fit 32 bits")
    return value - (1 << 32) if value >= (1 << 31) else value


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0,
         imm: int = 0) -> bytes:
    """One encoded ``struct bpf_insn``."""
    return struct.pack("<BBhi", code, (src << 4) | dst, off, _s32(imm))


class Program:
    """Instructions plus forward jumps to named labels."""

    def __init__(self) -> None:
        self.insns: list[tuple[int, int, int, int | str, int]] = []
        self.labels: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.insns)

    def op(self, code: int, dst: int = 0, src: int = 0, off: int = 0,
           imm: int = 0) -> None:
        self.insns.append((code, dst, src, off, imm))

    def jump(self, code: int, imm: int, label: str, dst: int = 0,
             src: int = 0) -> None:
        """A conditional (or, with ``JA``, plain) jump to ``label``."""
        self.insns.append((code, dst, src, label, imm))

    def label(self, name: str) -> None:
        if name in self.labels:
            raise ValueError(f"eBPF label {name!r} defined twice")
        self.labels[name] = len(self.insns)

    def assemble(self) -> bytes:
        out = []
        for pc, (code, dst, src, off, imm) in enumerate(self.insns):
            if isinstance(off, str):
                if off not in self.labels:
                    raise ValueError(f"eBPF label {off!r} undefined")
                off = self.labels[off] - pc - 1
            if not -(1 << 15) <= off < (1 << 15):
                raise ValueError(f"eBPF jump out of range at {pc}")
            out.append(insn(code, dst, src, off, imm))
        return b"".join(out)
