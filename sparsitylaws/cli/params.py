"""Click parameter types shared by commands: one rule for every token count.

:data:`TOKEN_COUNT` accepts what people write for token budgets: ``2000000000000``,
``2e12``, ``2.5e9``, ``1_000_000``, and suffixed forms ``2T``, ``2.5B``, ``300M``, ``64k``
(case-insensitive, decimal: k = 1e3, M = 1e6, B/G = 1e9, T = 1e12).  The value must be a
whole, positive number of tokens (``2.5e-3`` or ``1.5`` are errors naming the option).
"""

from __future__ import annotations

import math
import re

import click

_SUFFIX = {"": 1, "k": 10 ** 3, "m": 10 ** 6, "b": 10 ** 9, "g": 10 ** 9, "t": 10 ** 12}
_PATTERN = re.compile(r"\s*([0-9][0-9_]*(?:\.[0-9_]*)?(?:e[+-]?[0-9]+)?)\s*([kmbgt]?)\s*", re.I)


def parse_token_count(text: str | int | float, allow_zero: bool = False) -> int:
    """'2e12', '2T', '2.5B', '1_000_000', 7 -> int; ValueError with a short reason."""
    if isinstance(text, bool):
        raise ValueError("not a token count")
    if isinstance(text, int):
        value = float(text)
    elif isinstance(text, float):
        value = text
    else:
        m = _PATTERN.fullmatch(text)
        if not m:
            raise ValueError("not a token count (e.g. 2000000000000, 2e12, 2T, 2.5B, 300M)")
        value = float(m.group(1).replace("_", "")) * _SUFFIX[m.group(2).lower()]
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    if value != round(value):
        raise ValueError("not a whole number of tokens")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError("must be > 0" if not allow_zero else "must be >= 0")
    return int(round(value))


class TokenCount(click.ParamType):
    """A whole number of tokens in any of the forms :func:`parse_token_count` accepts."""

    name = "TOKENS"

    def __init__(self, allow_zero: bool = False) -> None:
        self.allow_zero = allow_zero

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            raw: str | int | float = value
        else:
            raw = str(value)
        try:
            return parse_token_count(raw, self.allow_zero)
        except ValueError as exc:
            self.fail(f"{value!r}: {exc}", param, ctx)


#: token counts > 0 (tokens trained, tokens per step)
TOKEN_COUNT = TokenCount()
#: token counts >= 0 (thresholds such as --warmup-tokens)
TOKEN_COUNT_OR_ZERO = TokenCount(allow_zero=True)
