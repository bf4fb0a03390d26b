"""Policies: SLA labels per volume, the policies that match them, `run` and `status`.

- :mod:`engine.policies.config`: the settings file's ``[labels]``, ``[policies.*]`` and
  ``[run]`` tables, checked, with errors that name the file, the line and the key;
- :mod:`engine.policies.labels`: a volume's environment and data class;
- :mod:`engine.policies.policy`: which policy a volume takes, and why;
- :mod:`engine.policies.survey`: the inventory, the store's history and the policies, together;
- :mod:`engine.policies.claim` and :mod:`engine.policies.verification`: what a run keeps in the
  store so that runs on several machines agree;
- :mod:`engine.policies.run` and :mod:`engine.policies.status`: the two things a person asks.
"""
