"""The bulk email sender: journey and marketing email from ``parcours.send.email.bulk.v1``,
with its own capacity, at a lower CPU priority than everything else (transactional first)."""
