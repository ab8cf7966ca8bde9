"""One-shot commands of the roles plugin: keys, req, status."""
