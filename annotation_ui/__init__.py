"""HTML pages for annotators and leads: Jinja2 templates swapped by htmx."""
