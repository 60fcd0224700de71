"""The bulk push sender: journey and marketing push from ``parcours.send.push.bulk.v1``,
with its own capacity, at a lower CPU priority than everything else (transactional first)."""
