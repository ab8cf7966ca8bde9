"""The downloader role: fetch announced files or objects to a local directory and announce them."""
