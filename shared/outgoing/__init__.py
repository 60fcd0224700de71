"""The way out: the decision step every message passes before it is sent (``step``)."""
