"""How higher apps add to what accounts shows, without accounts importing them.

accounts is the lowest layer (accounts ← vclusters ← provisioning): it knows teams,
roles and quotas, but not what uses a quota nor how a team's vclusters are
provisioned. Two hooks, filled from the higher apps' AppConfig.ready():

- the usage provider (vclusters): sums what each team's vclusters request, so team
  pages and the quota API show usage and headroom;
- team sections (provisioning's pod security, for one): a template and a function
  giving its context, rendered on a team's page below the quota.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from . import resources

UsageProvider = Callable[[list[int]], dict[int, dict[str, int]]]

_usage_provider: UsageProvider | None = None


def provide_usage(provider: UsageProvider) -> None:
    global _usage_provider
    _usage_provider = provider


def usage_by_team(team_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """{team id: usage keyed like Team.quota()}, in one query; all zero while no app provides usage."""
    team_ids = list(team_ids)
    if _usage_provider is not None:
        return _usage_provider(team_ids)
    return {team_id: {"max_vclusters": 0, **{r.field: 0 for r in resources.RESOURCES}} for team_id in team_ids}


@dataclass(frozen=True)
class TeamSection:
    template: str
    context: Callable  # (request, team) -> dict, available to the template as `section`


_team_sections: list[TeamSection] = []


def add_team_section(template: str, context: Callable) -> None:
    if all(section.template != template for section in _team_sections):
        _team_sections.append(TeamSection(template, context))


def team_sections(request, team) -> list[tuple[str, dict]]:
    """(template, its context) of every section on this team's page, in registration order."""
    return [(section.template, section.context(request, team)) for section in _team_sections]
