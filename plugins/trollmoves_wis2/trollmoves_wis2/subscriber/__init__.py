"""The ``wis2-subscriber`` role: WIS2 notifications in, verified files and posttroll ``file`` messages out."""
