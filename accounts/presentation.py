"""What pages show about quotas: usage bars with exact Kubernetes-notation labels."""

from dataclasses import dataclass

from . import resources


@dataclass(frozen=True)
class Bar:
    label: str
    used: str
    limit: str
    percent: int

    @property
    def level(self) -> str:
        return "full" if self.percent >= 100 else "high" if self.percent >= 80 else "ok"


def quota_bars(team, used: dict[str, int]) -> list[Bar]:
    rows = [("Vclusters", "max_vclusters", str)] + [(r.label, r.field, r.format) for r in resources.RESOURCES]
    bars = []
    for label, field, fmt in rows:
        limit = getattr(team, field)
        percent = 100 if limit == 0 else min(round(100 * used[field] / limit), 100)
        bars.append(Bar(label, str(fmt(used[field])), str(fmt(limit)), percent))
    return bars


def headroom_text(left: dict[str, int]) -> dict[str, str]:
    text = {r.name: str(r.format(left[r.field])) if left[r.field] else "0" for r in resources.RESOURCES}
    return {"vclusters": str(left["max_vclusters"]), **text}
