"""The front desk's pages, one module per part of the product; each module lists its own
`urlpatterns`, gathered by kassa/web/urls.py."""
