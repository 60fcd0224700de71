"""The SMS sender: renders each message and posts it to the SMS provider over HTTP,
exactly once (the delivery ledger, and an Idempotency-Key the provider honours)."""
