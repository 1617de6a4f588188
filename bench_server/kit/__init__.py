"""Cross-cutting helpers: settings, database sessions, errors, paging, export."""
