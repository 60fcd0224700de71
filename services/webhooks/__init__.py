"""Outbound webhooks: status changes and reactions posted, signed, to the tenants' own
endpoints (python -m services.webhooks)."""
