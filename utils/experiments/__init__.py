"""Reference runs behind the shared results table (see `utils.results`), one module per
part of the course; every module here is imported when the table is built."""
