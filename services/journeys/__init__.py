"""The journey engine: profiles enter live journey versions (their audience, or a test
run's test profiles), reactions and journey events move the instances waiting for them,
durable timers end their waits, and the effects of each move (messages through the
delivery rules and the bulk lanes, profile updates, HTTP calls) are applied from the
outbox the move was stored with."""
