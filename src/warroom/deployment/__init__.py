"""Deployment checkpoints: readiness checks, their reports, and the deploy/rollback pipeline.

The ``[deployment]`` settings they read belong to the foundation, in
:mod:`warroom.config.deployment`.
"""
