"""Parcours' own Python package: pure domain logic, settings, adapters and the topic catalogue."""
