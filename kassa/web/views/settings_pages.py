"""(Pages of this part arrive with their own commit.)"""

from __future__ import annotations

urlpatterns: list = []
