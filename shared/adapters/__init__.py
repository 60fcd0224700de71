"""Thin adapters to Kafka, PostgreSQL and SMTP: one concern each, no domain decisions."""
