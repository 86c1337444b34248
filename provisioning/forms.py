from django import forms

from accounts.models import Team

from .models import PodSecurity

KUBECONFIG_HELP = (
    "An admin kubeconfig with inline credentials, e.g. from "
    "`kubectl config view --raw --flatten --minify`. The portal connects to the cluster to check it. "
    "It is stored encrypted and never shown again, not even after an error."
)


class SecretTextarea(forms.Textarea):
    """A textarea that never sends its value back to the browser: a kubeconfig is
    admin access to a cluster, so a form shown again after an error comes back empty."""

    def get_context(self, name, value, attrs):
        return super().get_context(name, None, attrs)


class HostClusterForm(forms.Form):
    """Shape only: the name, teams and kubeconfig are checked by the service."""

    name = forms.CharField(
        max_length=50, help_text="Lowercase letters, digits and '-'.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "placeholder": "e.g. eu-west-1"}),
    )
    kubeconfig = forms.CharField(
        strip=False, help_text=KUBECONFIG_HELP,
        widget=SecretTextarea(attrs={"rows": 10, "spellcheck": "false", "autocomplete": "off", "class": "mono"}),
    )
    capacity_notes = forms.CharField(
        label="Capacity notes", required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Free text for admins: size, location, what it is for.",
    )
    teams = forms.MultipleChoiceField(
        label="Allowed teams", required=False, widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every team's vclusters may be placed here.",
    )
    enabled = forms.BooleanField(
        required=False, initial=True, help_text="New vclusters are placed only on enabled host clusters."
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["teams"].choices = list(Team.objects.values_list("slug", "name"))


class HostClusterEditForm(HostClusterForm):
    """Everything but the name, which identifies the host cluster; the kubeconfig is
    replaced only when a new one is pasted."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.fields["name"]
        kubeconfig = self.fields["kubeconfig"]
        kubeconfig.required = False
        kubeconfig.label = "Replace kubeconfig"
        kubeconfig.help_text = "Leave empty to keep the current one. " + KUBECONFIG_HELP
        self.order_fields(["enabled", "capacity_notes", "teams", "kubeconfig"])

    def changes(self) -> dict:
        data = dict(self.cleaned_data)
        if not data["kubeconfig"].strip():
            del data["kubeconfig"]
        return data


class PodSecurityForm(forms.Form):
    pod_security = forms.ChoiceField(label="Pod security", choices=PodSecurity.choices)
