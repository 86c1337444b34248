"""YAML written by a person (a kubeconfig, a tenant policy): parsed safely, and every
way it can fail to be YAML is one exception. PyYAML raises RecursionError rather than
YAMLError for deep nesting (a few kilobytes of `[`), which would otherwise be a 500."""

import yaml


class NotYAML(ValueError):
    pass


def load(text: str):
    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError):
        raise NotYAML("not valid YAML") from None
