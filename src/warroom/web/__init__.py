"""The web UI, served by ``warroom serve`` at ``/`` beside the API (``/api/v1``).

How it is built, and why:

- **Server-rendered fragments, htmx to fetch them.** ``GET /`` is a static shell (no data, no
  authentication). Each screen is an HTML fragment under ``/ui/`` rendered with Jinja2 from the
  application layer (:mod:`warroom.app`), the same functions the API's routes call, so the UI
  and the API cannot disagree. Jinja2 escapes everything it renders (autoescape): a backup
  name, a workflow state or an error message is text, never markup. htmx (vendored in
  ``static/``, with its licence; no CDN, works offline) swaps the fragments in.
- **The token lives in the browser's sessionStorage**, is sent as ``Authorization: Bearer`` by
  script on every request (htmx's ``configRequest`` hook and ``fetch``), and is never put in a
  URL or a cookie. No cookie is ever read, so no request can be forged cross-site (CSRF).
- **Every action is a call of the JSON API** (``/api/v1/...``) from ``static/app.js``, with the
  same bearer token: the API checks the role and writes the audit log for UI actions exactly as
  for any other client. Fragments are authenticated by the API's own dependencies and rendered
  for the caller's role: a button the role may not use is not rendered (and the API would
  refuse it anyway).
- **A strict Content-Security-Policy** on the shell: scripts and styles from this origin only,
  no inline script, htmx's ``eval`` and script-tag processing off.
"""

from __future__ import annotations

from warroom.web.routes import install_web

__all__ = ["install_web"]
