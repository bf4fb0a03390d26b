"""A volume's SLA labels, environment and data class: from its Scaleway tags, else from the
first label rule of the settings file that matches it, else the global default. Each label is
found on its own, and says where it came from."""
from __future__ import annotations

from dataclasses import dataclass

from engine.policies.config import LabelSettings
from engine.policies.policy import VolumeFacts, match_reasons


@dataclass(frozen=True)
class Labels:
    environment: str = ""
    data_class: str = ""
    environment_from: str = ""  # "tag environment=production", "rule at FILE:LINE", "default"
    data_class_from: str = ""


def tag_value(tags: list[str], keys: tuple[str, ...]) -> tuple[str, str] | None:
    """The value of the first of ``keys`` among Scaleway tags ("key=value" or "key:value"),
    with the tag it came from."""
    for key in keys:
        for tag in tags:
            name, sep, value = tag.partition("=")
            if not sep:
                name, sep, value = tag.partition(":")
            if sep and name.strip() == key and value.strip():
                return value.strip(), tag
    return None


def volume_labels(facts: VolumeFacts, settings: LabelSettings) -> Labels:
    env = _one(facts, settings.environment_tags, "environment", settings)
    data = _one(facts, settings.data_class_tags, "data_class", settings)
    return Labels(env[0], data[0], env[1], data[1])


def _one(facts: VolumeFacts, keys: tuple[str, ...], label: str,
         settings: LabelSettings) -> tuple[str, str]:
    found = tag_value(facts.tags, keys)
    if found is not None:
        return found[0], f"tag {found[1]}"
    for rule in settings.rules:
        value = getattr(rule, label)
        if value and match_reasons(rule.match, facts) is not None:
            return value, f"rule at {rule.where}"
    default = getattr(settings, label)
    return default, "default" if default else ""
