-- What journeys hold instead of dropping (issue 13), counted every few seconds by the
-- engine's backlog gauge: profiles held at an event entry past its rate, and journey
-- messages deferred by a rule (capacity at its cap, fatigue, quiet hours). Partial
-- indexes keep those counts reads of the held rows only, not of every instance or held
-- message.
CREATE INDEX journey_instances_held ON journey_instances (entered_at)
    WHERE state = 'waiting' AND node = 'entry';
CREATE INDEX held_messages_journeys ON held_messages (held_at)
    WHERE record -> 'origin' ->> 'kind' = 'journey';
