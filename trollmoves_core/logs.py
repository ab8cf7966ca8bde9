"""The one logging configuration every trollmoves command uses."""

from __future__ import annotations

import argparse
import logging
import logging.config
import logging.handlers

LOG_FORMAT = "[%(asctime)s %(levelname)-8s %(name)s] %(message)s"


def add_logging_arguments(parser: argparse.ArgumentParser) -> None:
    """The logging options, spelled as upstream's scripts spell them."""
    group = parser.add_argument_group("logging")
    group.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    group.add_argument("-l", "--log", metavar="FILE", help="log to FILE, rotated at midnight")
    group.add_argument("-c", "--log-config", metavar="YAML", help="logging dictConfig file (YAML)")


def setup_logging(args: argparse.Namespace) -> None:
    """Configure the root logger from the options of :func:`add_logging_arguments`."""
    log_config = getattr(args, "log_config", None)
    if log_config:
        from trollmoves_core.config import read_yaml
        logging.config.dictConfig(read_yaml(log_config))
        return
    handler: logging.Handler
    if getattr(args, "log", None):
        handler = logging.handlers.TimedRotatingFileHandler(args.log, when="midnight", backupCount=7)
    else:
        handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if getattr(args, "verbose", False) else logging.INFO)
    for noisy in ("paramiko", "botocore", "s3fs", "aiobotocore", "urllib3", "watchdog", "stevedore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
