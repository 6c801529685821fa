"""Result tables (JSON, CSV, Markdown) and figures."""
