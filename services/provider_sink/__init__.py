"""A stand-in for SMS and push providers, for tests and the demo: it accepts every request
and keeps it readable. HTTP on ``PARCOURS_PROVIDER_SINK_PORT`` (8026), messages in memory.

    POST /sms     {"to", "text", "messageId"}                                → 202 {"id"}
    POST /push    {"token", "application", "platform", "title", "body",
                   "data", "messageId"}                                      → 202 {"id"}
    GET  /messages?channel=sms|push&to=…    what arrived (``to``: phone or token)
    DELETE /messages                        forget everything
    GET  /duplicates                        messageIds recorded more than once
    POST /reject?status=503&count=2[&channel=sms][&to=…][&error=UNREGISTERED]
                                            the next matching requests get that status
                                            (one armed per channel and ``to``: arming
                                            two recipients keeps both; count=0 disarms)
    POST /receipts?to=…[&error=…]           SMS to ``to`` get failed receipts (none: delivered)
    POST /inbound?tenant=…  {"id", "from", "to", "text"}
                                            an inbound SMS, to the tenant's webhook

Each accepted SMS gets a delivery receipt posted to ``provider_sink_receipts_url`` (the
gateway's webhook), signed as provider ``sink``; inbound messages go to the webhook next
to it (``…/inbound/{tenant}``).

Like a real provider it honours ``Idempotency-Key``: a request repeating an accepted key
gets the first answer again and is not recorded twice; the same key with another
payload gets 422. Injected failures are not remembered, so a retry can succeed.
The payloads are ``shared.adapters.provider_payloads``'s models.
"""
