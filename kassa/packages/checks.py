"""`kassa verify` checks of packages against their sub-ledgers."""

from __future__ import annotations
