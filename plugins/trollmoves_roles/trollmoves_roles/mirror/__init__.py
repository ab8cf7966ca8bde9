"""The ``mirror`` role: a server and a client back to back (upstream ``move_it_mirror.py``).

It subscribes to the announcements of internal servers, re-announces each file on its own
publisher with its own ``request_address``, and serves external clients' pushes by first
fetching the file from an internal server into a staging directory (once, however many
clients ask at the same time), then delivering it with the mover for the destination's
scheme.

Modules: :mod:`.config` (INI → section configs), :mod:`.registry` (what was re-announced and
from which internal servers), :mod:`.staging` (single-flight fetches into staging
directories), :mod:`.requests` (the external request socket), :mod:`.chain` (one section
running in its event loop), :mod:`.service` (the process), :mod:`.role` (the command line).
"""
