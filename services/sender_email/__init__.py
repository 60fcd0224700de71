"""The email sender: renders each message and hands it to an SMTP server, exactly once."""
