import yaml
from django import forms

from accounts.models import Team
from portal import yamlinput

from .. import runtimes
from ..models import Access, PodSecurity
from .services import HELP

TENANT_POLICY_EXAMPLE = (
    "csi_drivers: [secrets-store.csi.k8s.io]\n"
    "tolerations:\n- {key: dedicated, operator: Equal, value: tenants, effect: NoSchedule}\n"
    "node_label_keys: [topology.kubernetes.io/zone]\n"
    "runtime_classes: [gvisor]\n"
    "storage_classes: [fast-ssd]\n"
    "priority_classes: [tenant-high]\n"
    "external_name_services: false\n"
    "ingress_hosts: ['*.{team}.apps.example.com']\n"
    "ingress_classes: [public]"
)
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


class TenantPolicyField(forms.CharField):
    """A tenant policy written as YAML (or JSON, which is YAML); its keys and values are
    checked by the service, with the rest of the host cluster."""

    def prepare_value(self, value):
        if isinstance(value, dict):
            return yaml.safe_dump(value, sort_keys=False) if value else ""
        return value

    def to_python(self, value):
        text = super().to_python(value)
        try:
            parsed = yamlinput.load(text) if text.strip() else {}
        except yamlinput.NotYAML:
            raise forms.ValidationError("Not valid YAML.") from None
        if not isinstance(parsed, dict):
            raise forms.ValidationError("Write a mapping of policy keys, or leave it empty.")
        return parsed


def _mono_input(placeholder: str) -> forms.TextInput:
    """A one-line input for names and references: monospace, no autocomplete or spelling."""
    return forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "class": "mono",
                                  "placeholder": placeholder})


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
    tenant_policy = TenantPolicyField(
        label="Tenant policy", required=False,
        widget=forms.Textarea(attrs={"rows": 9, "spellcheck": "false", "class": "mono",
                                     "placeholder": TENANT_POLICY_EXAMPLE}),
        help_text="What tenants may ask of this host beyond the safe default (YAML; empty allows nothing extra): "
        "csi_drivers, tolerations, node_label_keys, runtime_classes, storage_classes, priority_classes, "
        "external_name_services, ingress_hosts ({team}: the team's slug), ingress_classes.",
    )
    # Selects a browser always sends; a POST without one (a script) keeps the default,
    # or on the edit form the current value (see clean()).
    runtime = forms.ChoiceField(choices=runtimes.CHOICES, required=False, initial=runtimes.DEFAULT,
                                help_text=HELP["runtime"])
    runtime_image = forms.CharField(label="Runtime image", required=False, help_text=HELP["runtime_image"],
                                    widget=_mono_input("e.g. registry.example.com/vcportal/runtime:1.0"))
    access = forms.ChoiceField(choices=Access.choices, required=False, initial=Access.NODEPORT,
                               help_text=HELP["access"])
    access_address = forms.CharField(label="Access address", required=False, help_text=HELP["access_address"],
                                     widget=_mono_input("e.g. node1.example.com or vc.example.com"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["teams"].choices = list(Team.objects.values_list("slug", "name"))

    def clean(self):
        cleaned = super().clean()
        for select in ("runtime", "access"):
            if not cleaned.get(select):
                cleaned.pop(select, None)
        return cleaned


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
        self.order_fields(["enabled", "capacity_notes", "teams", "tenant_policy", "runtime", "runtime_image", "access",
                           "access_address", "kubeconfig"])

    def changes(self) -> dict:
        data = dict(self.cleaned_data)
        if not data["kubeconfig"].strip():
            del data["kubeconfig"]
        return data


class PodSecurityForm(forms.Form):
    pod_security = forms.ChoiceField(label="Pod security", choices=PodSecurity.choices)
