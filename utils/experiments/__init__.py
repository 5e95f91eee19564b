"""Reference runs behind the shared results table (see `utils.results`), one module per task."""
