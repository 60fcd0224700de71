"""The fault suite shares the integration suite's fixtures (the real local stack)."""

from tests.integration.conftest import pool, stack_is_up  # noqa: F401  (fixtures)
