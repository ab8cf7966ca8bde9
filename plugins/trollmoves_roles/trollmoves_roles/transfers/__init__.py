"""Moving files: the worker pool, the mover cache, the transfer service, unpacking (``compression``)."""
