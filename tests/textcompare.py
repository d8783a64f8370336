"""Compare generated text with numbers at a stated tolerance and everything else exactly.

Generated files (the packaged law set, docs/example.md) hold floats computed on the machine
that wrote them; another CPU (other BLAS kernels, other vector widths) differs in the last
bits, e.g. 0.0006066022907570412 against 0.000606602290757041.  So the text between numbers
must match exactly, and each pair of numbers must agree:

* integers (no decimal point, no exponent) exactly;
* other numbers within :data:`REL` relative, or within one unit of the last digit printed
  (a number rounded for print may flip its last digit: 0.0654 against 0.0655).
"""

from __future__ import annotations

import re

__all__ = ["REL", "NUMBER", "text_differences"]

#: Relative tolerance of two numbers written at full precision.
REL = 1e-9
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.])")


def _last_unit(token: str) -> float:
    """One unit of the last digit written: 0.0654 -> 1e-4, 1.5e-07 -> 1e-8, 12.30 -> 0.01."""
    mant, _, exp = token.lower().partition("e")
    decimals = len(mant.split(".", 1)[1]) if "." in mant else 0
    return 10.0 ** (-decimals + (int(exp) if exp else 0))


def _close(a: str, b: str) -> bool:
    if a == b:
        return True
    is_int = not any(ch in a + b for ch in ".eE")
    if is_int:
        return False
    x, y = float(a), float(b)
    return abs(x - y) <= max(REL * max(abs(x), abs(y)), 1.000001 * max(_last_unit(a), _last_unit(b)))


def text_differences(expected: str, got: str, limit: int = 5) -> list[str]:
    """Where ``got`` differs from ``expected`` beyond the tolerance (empty: the same)."""
    parts_e, parts_g = NUMBER.split(expected), NUMBER.split(got)
    nums_e, nums_g = NUMBER.findall(expected), NUMBER.findall(got)
    out: list[str] = []
    if len(nums_e) != len(nums_g) or parts_e != parts_g:
        for i, (pe, pg) in enumerate(zip(parts_e, parts_g, strict=False)):
            if pe != pg:
                out.append(f"text differs after number {i}: {pe[:80]!r} vs {pg[:80]!r}")
                break
        else:
            out.append(f"{len(nums_e)} numbers expected, {len(nums_g)} found")
        return out
    line = 1
    for i, (a, b) in enumerate(zip(nums_e, nums_g, strict=True)):
        line += parts_e[i].count("\n")
        if not _close(a, b):
            out.append(f"line {line}: {a} vs {b}")
            if len(out) >= limit:
                break
    return out
