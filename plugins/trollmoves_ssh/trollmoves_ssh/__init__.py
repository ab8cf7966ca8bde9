"""Trollmoves ssh plugin: SFTP (``sftp://``, ``ssh://``) and SCP (``scp://``) movers on paramiko."""
