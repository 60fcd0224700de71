"""The ``parcours`` command line: tenants and API keys (more verbs come with the admin API)."""
