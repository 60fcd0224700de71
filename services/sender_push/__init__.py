"""The push sender: renders each message and posts it to the push provider over HTTP,
exactly once (the delivery ledger, and an Idempotency-Key the provider honours)."""
