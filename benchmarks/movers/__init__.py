"""Our movers against the reference tools, on the same loopback servers as the tests.

Run ``python -m benchmarks.movers [--quick] [--protocol file ftp ftps sftp scp s3 http https]``. Not a
test: nothing asserts, it measures, prints and writes ``results/movers.md``. It re-executes
itself in a private network namespace (``scripts/in-netns``) unless it already is in one.

Servers: pyftpdlib (FTP, and FTPS with a self-signed certificate) in a subprocess
(``python -m trollmoves_ftp.testing``), a throwaway OpenSSH ``sshd`` (``trollmoves_ssh.testing``),
``moto_server`` for S3, nginx with WebDAV for HTTP(S) (``trollmoves_http.testing``). Our movers
come from ``default_host().mover(uri, params)``, as the roles get them. References, in the
same run: ``cp`` (file; our mover in ``mode=copy``), the OpenSSH ``scp`` client (SFTP mode
for ``sftp``, ``-O`` legacy SCP for ``scp``), ``curl`` (FTP/FTPS, HTTP/HTTPS), boto3 ``upload_file`` /
``download_file`` (S3). Server-side files go to ``/dev/shm`` when it has room, so the disk
does not take part.

* big file (1 GiB; ``--quick`` 100 MiB): upload and download, ours and the reference
  interleaved, alternating which goes first, median of ``--repeat`` runs; MB/s (10^6 bytes
  per second) and the client's CPU seconds per GiB (this process and the tools it ran; not
  the server).
* small files (1 KiB x 1000; ``--quick`` x 200): through one mover (one pooled connection)
  against the reference tool sending all files in one session (one ``cp``/``scp``/``curl``
  command, one boto3 client); then a new mover per file (one connection per file) on the
  first ``--per-file-count`` files, for the reused/per-file ratio.

Every case has a time limit (``--case-timeout``): tools run with a subprocess timeout,
small-file loops stop at the deadline, and a watchdog stops the server under a transfer that
overruns, so the transfer fails instead of hanging (the server is restarted for the next case).

Modules: :mod:`~benchmarks.movers.targets` starts the servers and runs the reference tools,
:mod:`~benchmarks.movers.measure` times the cases, :mod:`~benchmarks.movers.report` writes
the tables and :mod:`~benchmarks.movers.cli` ties them together.
"""
