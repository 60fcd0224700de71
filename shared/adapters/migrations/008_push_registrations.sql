-- A profile's push devices: [{"registrationToken", "application", "pushPlatform"}].
-- Test profiles use them for push proofs; journeys will push to profiles through them.
ALTER TABLE profiles ADD COLUMN push_registrations jsonb NOT NULL DEFAULT '[]';
