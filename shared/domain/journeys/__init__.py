"""Journeys: definitions (``definition``), what blocks publishing one (``validation``),
instances with their inputs and effects (``instance``), and the pure state machine
(``advance``). The engine (a later service) stores instances and applies effects."""
