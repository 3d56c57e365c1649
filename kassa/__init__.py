"""Kassa: the front desk's money system."""
