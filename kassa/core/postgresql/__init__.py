"""Django's PostgreSQL backend with a schema editor that knows the tenant keys.

On PostgreSQL every tenant table is keyed on `(organization_id, id)` and its foreign keys to
other tenant tables name both columns (DESIGN.md, "Scale (v2)"; `kassa.core.tenant_keys`).
Django's own schema editor knows only single-column keys: it would add a foreign key to `id`
alone (which no longer has a unique index to point at) and would not find a two-column one to
drop. `settings.database()` names this backend for every PostgreSQL alias.
"""
