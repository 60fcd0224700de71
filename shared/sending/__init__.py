"""What every sender shares: consume ``parcours.send.<channel>.*`` → parse → claim in the
delivery ledger → render → hand over to the provider with retries → settle → commit.

A sender service supplies a ``SenderSpec`` (channel, topic, consumer group, and the
provider that takes a rendered message); ``shared.sending.app.main`` runs it. Every sender
exports the same metrics (``shared.sending.metrics``), labelled with its channel.
"""
