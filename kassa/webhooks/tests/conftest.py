from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def private_allowed(settings: Any) -> None:
    """The test's receiver listens on 127.0.0.1, which Kassa refuses unless told otherwise."""
    settings.KASSA_WEBHOOKS_ALLOW_PRIVATE = True
