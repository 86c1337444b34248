"""Kubernetes resource quantities ("500m", "2", "4Gi", "1e3"), parsed exactly.

Pure functions with no Django import, so settings can validate their defaults with
them. The grammar is the one of Kubernetes' resource.Quantity: a non-negative
decimal number followed by a binary suffix (Ki…Ei), a decimal suffix (n, u, m, k,
M, G, T, P, E) or a decimal exponent (e3, E-2). CPU is kept as integer millicores
and memory/storage as integer bytes, so sums and comparisons never round.
"""

import re
from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
}
_PATTERN = re.compile(
    r"(?P<number>\+?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?:(?P<binary>[KMGTPE]i)|[eE](?P<exponent>[+-]?\d{1,2})|(?P<decimal>[numkMGTPE]?))",
    re.ASCII,  # Kubernetes' digits are 0-9; Python's \d also takes "١٢" and "²"
)
_MAX_LENGTH = 64


class QuantityError(ValueError):
    """A quantity that is malformed, negative, zero where not allowed, or out of range."""


def parse_quantity(text: str | int) -> Decimal:
    """The exact value of a quantity, in base units (cores, bytes, count)."""
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise QuantityError("must be a string in Kubernetes quantity notation, e.g. \"2\", \"500m\", \"4Gi\"")
    text = str(text).strip()
    if text.startswith("-"):
        raise QuantityError("must not be negative")
    match = _PATTERN.fullmatch(text) if len(text) <= _MAX_LENGTH else None
    if not match:
        raise QuantityError(f"\"{text[:_MAX_LENGTH]}\" is not a Kubernetes quantity (e.g. \"2\", \"500m\", \"4Gi\")")
    try:
        number = Decimal(match["number"])
        if match["binary"]:
            return number * _BINARY[match["binary"]]
        if match["exponent"] is not None:
            return number.scaleb(int(match["exponent"]))
        return number * _DECIMAL[match["decimal"]]
    except (InvalidOperation, ArithmeticError):
        raise QuantityError(f"\"{text}\" is out of range") from None


def _positive_integer(value: Decimal, maximum: int, *, shown_maximum: str, unit: str) -> int:
    if value <= 0:
        raise QuantityError("must be greater than zero")
    if value > maximum:
        raise QuantityError(f"must be at most {shown_maximum}")
    if value != value.to_integral_value():
        raise QuantityError(f"must be a whole number of {unit}")
    return int(value)


def parse_cpu(text: str | int, *, maximum_millicores: int) -> int:
    """CPU in millicores: "2" → 2000, "500m" → 500."""
    value = parse_quantity(text) * 1000
    return _positive_integer(value, maximum_millicores, shown_maximum=format_cpu(maximum_millicores), unit="millicores (1m)")


def parse_bytes(text: str | int, *, maximum: int) -> int:
    """Memory or storage in bytes: "4Gi" → 4294967296, "1G" → 1000000000."""
    return _positive_integer(parse_quantity(text), maximum, shown_maximum=format_bytes(maximum), unit="bytes")


def parse_count(text: str | int, *, maximum: int) -> int:
    """A plain positive count such as pods: 110, "110" (no suffixes)."""
    if isinstance(text, str) and not text.strip().isdigit():
        raise QuantityError("must be a whole number")
    return _positive_integer(parse_quantity(text), maximum, shown_maximum=str(maximum), unit="units")


def format_cpu(millicores: int) -> str:
    """The shortest exact notation: 2000 → "2", 1500 → "1500m"."""
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def format_bytes(count: int) -> str:
    """The largest exact suffix: 4294967296 → "4Gi", 1000000000 → "1G", 1500 → "1500"."""
    for suffix, factor in reversed(_BINARY.items()):
        if count and count % factor == 0:
            return f"{count // factor}{suffix}"
    for suffix in ("E", "P", "T", "G", "M", "k"):
        factor = int(_DECIMAL[suffix])
        if count and count % factor == 0:
            return f"{count // factor}{suffix}"
    return str(count)
