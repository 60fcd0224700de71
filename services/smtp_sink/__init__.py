"""A real SMTP server for tests and the demo: accepts every message and keeps it readable.

SMTP on ``PARCOURS_SMTP_PORT`` (2525); an HTTP API on ``PARCOURS_SMTP_SINK_HTTP_PORT``
(8025) lists what arrived: ``GET /messages?to=…``, ``DELETE /messages``.
"""
