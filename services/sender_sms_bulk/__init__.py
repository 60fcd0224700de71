"""The bulk SMS sender: journey and marketing SMS from ``parcours.send.sms.bulk.v1``,
with its own capacity, at a lower CPU priority than everything else (transactional first)."""
