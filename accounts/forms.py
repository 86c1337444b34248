from django import forms

from . import resources

from .models import Role


class TeamForm(forms.Form):
    name = forms.CharField(max_length=100)
    slug = forms.CharField(max_length=50, required=False, help_text="Leave empty to derive it from the name.")


class QuotaForm(forms.Form):
    """Shape only; quantities are parsed by the service."""

    max_vclusters = forms.CharField(label="Vclusters", help_text="0 freezes the team.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for r in resources.RESOURCES:
            self.fields[r.name] = forms.CharField(label=r.label, help_text="Kubernetes notation")


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, widget=forms.TextInput(attrs={"placeholder": "e.g. ci-pipeline"}))
