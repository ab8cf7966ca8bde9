"""The FTP test servers under their old import name, for tests outside ``tests/ftp`` that put
this folder on ``sys.path`` (tests/roles); they should import :mod:`trollmoves_ftp.testing`."""

from trollmoves_ftp.testing import PASSWORD, USER, start_server

__all__ = ["PASSWORD", "USER", "start_server"]
