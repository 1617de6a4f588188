"""Cross-cutting helpers: settings, database sessions, errors, paging and export, the after-commit
outbox and the embedded worker."""
