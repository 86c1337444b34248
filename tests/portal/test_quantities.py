from decimal import Decimal

import pytest

from accounts import quantities as q
from accounts import resources

BIG = 2**62


@pytest.mark.parametrize("text, value", [
    ("1", Decimal(1)), ("500m", Decimal("0.5")), ("1.5", Decimal("1.5")), (".5", Decimal("0.5")),
    ("2Ki", Decimal(2048)), ("4Gi", Decimal(4 * 2**30)), ("1Ei", Decimal(2**60)),
    ("1k", Decimal(1000)), ("3M", Decimal(3_000_000)), ("1G", Decimal(10**9)),
    ("1e3", Decimal(1000)), ("1E-3", Decimal("0.001")), ("250u", Decimal("0.00025")), ("5n", Decimal("5e-9")),
    ("+2", Decimal(2)), (" 2 ", Decimal(2)), (7, Decimal(7)),
])
def test_it_parses_kubernetes_notation(text, value):
    assert q.parse_quantity(text) == value


@pytest.mark.parametrize("text", [
    "", "abc", "1.2.3", "1KB", "1kb", "1 Gi", "Gi", "1Gi1", "1e", "1e3Gi", "0x10", "1,5", "∞", "NaN", "inf",
    "1" * 65, None, 1.5, True, [], {}, "١٢", "²", "１", "1e١",  # digits other than 0-9 (found by fuzzing the CRD)
])
def test_it_rejects_what_is_not_a_quantity(text):
    with pytest.raises(q.QuantityError):
        q.parse_quantity(text)


def test_it_rejects_negative_quantities():
    with pytest.raises(q.QuantityError, match="negative"):
        q.parse_quantity("-1")


@pytest.mark.parametrize("text, millicores", [("1", 1000), ("500m", 500), ("0.25", 250), ("2.5", 2500), ("1e1", 10_000)])
def test_it_parses_cpu_to_millicores(text, millicores):
    assert q.parse_cpu(text, maximum_millicores=BIG) == millicores


@pytest.mark.parametrize("text, message", [
    ("0", "greater than zero"), ("0m", "greater than zero"), ("0.5m", "whole number"), ("1e2", "at most 10"),
])
def test_it_rejects_bad_cpu(text, message):
    with pytest.raises(q.QuantityError, match=message):
        q.parse_cpu(text, maximum_millicores=10_000)


@pytest.mark.parametrize("text, count", [("4Gi", 4 * 2**30), ("1G", 10**9), ("128974848", 128974848), ("129e6", 129_000_000), ("123Mi", 123 * 2**20)])
def test_it_parses_bytes(text, count):
    assert q.parse_bytes(text, maximum=BIG) == count


@pytest.mark.parametrize("text", ["0", "1m", "0.5", "1e30", "2Ei"])
def test_it_rejects_bad_byte_counts(text):
    with pytest.raises(q.QuantityError):
        q.parse_bytes(text, maximum=2**60)


@pytest.mark.parametrize("value, count", [(110, 110), ("110", 110), (" 3 ", 3)])
def test_it_parses_counts(value, count):
    assert q.parse_count(value, maximum=1000) == count


@pytest.mark.parametrize("value", ["1k", "1.5", "1e2", 0, "0", -3, "1001"])
def test_it_rejects_bad_counts(value):
    with pytest.raises(q.QuantityError):
        q.parse_count(value, maximum=1000)


@pytest.mark.parametrize("millicores, text", [(1000, "1"), (500, "500m"), (1500, "1500m"), (16_000, "16")])
def test_it_formats_cpu(millicores, text):
    assert q.format_cpu(millicores) == text


@pytest.mark.parametrize("count, text", [(2**30, "1Gi"), (3 * 2**20, "3Mi"), (10**9, "1G"), (1536, "1536"), (3072, "3Ki"), (1500, "1500"), (0, "0")])
def test_it_formats_bytes(count, text):
    assert q.format_bytes(count) == text


@pytest.mark.parametrize("resource", resources.RESOURCES, ids=lambda r: r.name)
@pytest.mark.parametrize("text", ["1", "3", "64", "1500m", "2Gi", "300Mi", "10G", "1024"])
def test_it_round_trips_through_its_canonical_notation(resource, text):
    try:
        amount = resource.parse(text)
    except q.QuantityError:
        return  # not valid for this resource (e.g. "1500m" bytes); covered above
    assert resource.parse(resource.format(amount)) == amount
