-- A resumed journey version (issue 12): inputs that came while it was paused were kept on
-- its instances; the engine looks at those once the version is live again, and clears
-- the mark when done.
ALTER TABLE journey_versions ADD COLUMN resumed_at timestamptz;
