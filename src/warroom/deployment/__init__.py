"""Deployment checkpoints: readiness checks, their reports, and the deploy/rollback pipeline.

Kept free of imports: :mod:`warroom.config` imports :mod:`warroom.deployment.config`.
"""
