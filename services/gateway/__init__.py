"""The ingestion gateway: HTTP events in, Kafka records out, statuses readable."""
