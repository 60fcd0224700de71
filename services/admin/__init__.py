"""The admin API (``/admin/v1``): event configurations, their messages, previews."""
