"""The message bus: the transport seam and the posttroll/ZeroMQ transport."""
