"""Documents: the refund receipt and the statements of account, as PDF, each with a
verification code.

This package knows no refund or invoice: the app that owns the figures builds its `Document`
(kassa/refunds/documents.py, kassa/billing/statements.py) and this package lays it out
(`pdf.render`) and codes it (`codes`). It sits just above core so that every app can.
"""
