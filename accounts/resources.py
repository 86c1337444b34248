"""The four resources a vcluster requests and a team's quota caps, in one place.

Each resource has an API name ("cpu"), a model column holding an exact integer
("cpu_millicores"), a parser from Kubernetes notation and a formatter back to it.
"""

from dataclasses import dataclass
from typing import Callable

from . import quantities

# Sanity ceilings: anything above is a typo or an attack, not a plan.
MAX_CPU_MILLICORES = 10_000 * 1000
MAX_MEMORY_BYTES = 2**46  # 64Ti
MAX_STORAGE_BYTES = 2**50  # 1Pi
MAX_PODS = 100_000
MAX_VCLUSTERS = 10_000


@dataclass(frozen=True)
class Resource:
    name: str
    field: str
    label: str
    parse: Callable[[str | int], int]
    format: Callable[[int], str | int]
    example: str  # in Kubernetes notation, for help texts and schemas
    count: bool = False  # a plain number (pods), not a quantity


RESOURCES = (
    Resource("cpu", "cpu_millicores", "CPU",
             lambda v: quantities.parse_cpu(v, maximum_millicores=MAX_CPU_MILLICORES), quantities.format_cpu,
             '"2" or "500m"'),
    Resource("memory", "memory_bytes", "Memory",
             lambda v: quantities.parse_bytes(v, maximum=MAX_MEMORY_BYTES), quantities.format_bytes, '"4Gi"'),
    Resource("storage", "storage_bytes", "Storage",
             lambda v: quantities.parse_bytes(v, maximum=MAX_STORAGE_BYTES), quantities.format_bytes, '"10Gi"'),
    Resource("pods", "pods", "Pods", lambda v: quantities.parse_count(v, maximum=MAX_PODS), int,
             "50", count=True),
)
BY_NAME = {r.name: r for r in RESOURCES}


def parse_all(raw: dict) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Parse every resource present in raw; returns (model field values, errors by name)."""
    values, errors = {}, {}
    for resource in RESOURCES:
        if resource.name in raw:
            try:
                values[resource.field] = resource.parse(raw[resource.name])
            except quantities.QuantityError as exc:
                errors[resource.name] = [str(exc)]
    return values, errors
