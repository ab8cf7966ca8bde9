"""The client role: subscribe to servers' announcements, request the files, publish the results."""
