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


class WholeNumber(click.types.IntParamType):
    """A whole number >= ``minimum``, written as people write sizes: ``4096``, ``4_096``,
    ``4e3``, ``4096.0``; the message says what was wrong ("not a number", "not a whole
    number", "must be >= 1") instead of click's "not a valid integer"."""

    name = "INTEGER"

    def __init__(self, minimum: int = 1, example: str = "4096") -> None:
        self.minimum = minimum
        self.example = example

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = float(value)
        else:
            try:
                number = float(str(value).replace("_", "").strip())
            except ValueError:
                self.fail(f"{value!r} is not a number (e.g. {self.example})", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if number != round(number):
            self.fail(f"{value!r} is not a whole number", param, ctx)
        if number < self.minimum:
            self.fail(f"{value!r}: must be >= {self.minimum}", param, ctx)
        return int(round(number))


class PositiveNumber(click.types.FloatParamType):
    """A finite number > 0 (``7e9``, ``2.5``); "not a number" rather than "not a valid float"."""

    name = "FLOAT"

    def __init__(self, example: str = "2.5") -> None:
        self.example = example

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            number = float(str(value).replace("_", "").strip()) if not isinstance(value, float) else value
        except ValueError:
            self.fail(f"{value!r} is not a number (e.g. {self.example})", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if number <= 0:
            self.fail(f"{value!r}: must be > 0", param, ctx)
        return number
