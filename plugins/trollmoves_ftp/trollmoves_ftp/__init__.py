"""Trollmoves plugin providing the ``ftp://`` and ``ftps://`` mover (:class:`trollmoves_ftp.mover.FtpMover`)."""
