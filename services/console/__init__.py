"""The web console: server-rendered pages for marketers and operators over the admin API."""
