"""Message kinds and shapes: announcements, file dicts, uids, transfer keys, push/info/ack."""
