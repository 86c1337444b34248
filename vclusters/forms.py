from django import forms
from django.conf import settings

from .models import NAME_MAX_LENGTH
from .services import default_spec


class VClusterForm(forms.Form):
    """Shape only: names, versions, quantities and quota are checked by the service."""

    team = forms.ChoiceField()
    name = forms.CharField(
        max_length=NAME_MAX_LENGTH,
        help_text="Lowercase letters, digits and '-'; at most 40 characters.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "placeholder": "e.g. ci-sandbox"}),
    )
    kubernetes_version = forms.ChoiceField(label="Kubernetes version")
    cpu = forms.CharField(label="CPU", help_text='Cores: "2" or "500m".')
    memory = forms.CharField(help_text='"4Gi", "512Mi".')
    storage = forms.CharField(help_text='"10Gi".')
    pods = forms.CharField(help_text="Maximum number of pods.")

    def __init__(self, *args, teams, **kwargs):
        super().__init__(*args, **kwargs)
        self.teams = {team.slug: team for team in teams}
        self.fields["team"].choices = [(team.slug, team.name) for team in teams]
        self.fields["kubernetes_version"].choices = [(v, v) for v in settings.VCPORTAL_KUBERNETES_VERSIONS]
        if not self.is_bound:
            self.initial = {**default_spec(), **self.initial}

    def selected_team(self):
        slug = self.data.get("team") if self.is_bound else self.initial.get("team")
        return self.teams.get(slug) or next(iter(self.teams.values()), None)
