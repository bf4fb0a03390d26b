"""The inventory, the store's history and the policies, put together: for each volume, its
labels, its policy (and why), its backups and when they were last verified."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engine.policies.config import ConfigError, Policy, PolicyConfig
from engine.policies.labels import Labels, volume_labels
from engine.policies.policy import Assignment, VolumeFacts, assign

if TYPE_CHECKING:
    from engine.scaleway.inventory import VolumeInfo
    from engine.store.snapshot import SnapshotInfo


@dataclass
class SurveyedVolume:
    volume: VolumeInfo
    facts: VolumeFacts
    labels: Labels
    assignment: Assignment
    snapshots: list[SnapshotInfo] = field(default_factory=list)  # oldest first
    last_verified: str | None = None  # when a check --read-data last covered its backups

    @property
    def policy(self) -> Policy | None:
        return self.assignment.policy

    @property
    def newest(self) -> SnapshotInfo | None:
        return self.snapshots[-1] if self.snapshots else None


@dataclass
class Survey:
    config: PolicyConfig
    volumes: list[SurveyedVolume]

    def volumes_of(self, policy: Policy) -> list[SurveyedVolume]:
        return [v for v in self.volumes if v.policy is not None and v.policy.name == policy.name]

    def matching(self, policy: Policy) -> list[SurveyedVolume]:
        """Every volume the policy's match rule matches, whether or not it took the policy."""
        from engine.policies.policy import match_reasons
        return [v for v in self.volumes if match_reasons(policy.match, v.facts) is not None]

    def require_matches(self) -> None:
        """A policy whose match rule matches no volume at all is a mistake (a typo in a tag,
        say): a ConfigError naming its line."""
        for policy in self.config.policies:
            if not self.matching(policy):
                raise ConfigError(f"{policy.match_where}: policies.{policy.name}.match: matches no "
                                  f"volume ({policy.match.text()}): check the names against "
                                  "`strongroom inventory`, or remove the policy")


def build_survey(config: PolicyConfig, volumes: list[VolumeInfo],
                 project_names: dict[str, str], snapshots: list[SnapshotInfo],
                 verified: dict[str, str]) -> Survey:
    """``verified``: snapshot id → when a check --read-data last covered it."""
    by_volume: dict[str, list[SnapshotInfo]] = {}
    for snap in sorted(snapshots, key=lambda s: (s.time, s.id)):
        volume_id = (snap.source or {}).get("volume_id")
        if volume_id:
            by_volume.setdefault(volume_id, []).append(snap)
    out = []
    for volume in volumes:
        bare = VolumeFacts(volume.id, volume.name, volume.project_id,
                           project_names.get(volume.project_id, ""), volume.zone,
                           list(volume.tags))
        labels = volume_labels(bare, config.labels)
        facts = VolumeFacts(bare.id, bare.name, bare.project_id, bare.project_name, bare.zone,
                            bare.tags, labels.environment, labels.data_class)
        snaps = by_volume.get(volume.id, [])
        times = [t for s in snaps for t in (verified.get(s.id), s.last_verified) if t]
        out.append(SurveyedVolume(volume, facts, labels, assign(config.policies, facts), snaps,
                                  max(times) if times else None))
    return Survey(config, out)
