-- parcours reconcile (issue 14) accounts for the journey messages the engine decided in a
-- window: their actionSent steps, read by time. Without this, each run reads journey_steps
-- whole. Partial: one step in several is a send.
CREATE INDEX IF NOT EXISTS journey_steps_sent ON journey_steps (at) WHERE kind = 'actionSent';
