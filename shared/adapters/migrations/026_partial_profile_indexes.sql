-- A profile without a mobile phone or a birth date costs no entry in those indexes: every
-- query that uses them tests a value (=, IN, <, BETWEEN… imply IS NOT NULL, which the
-- planner proves), so partial indexes serve them all. Measured on inserts of 300,000
-- profiles without either (an import of emails and names): PostgreSQL CPU per row
-- 9.6-12.1 µs with the full indexes, 7.5-9.2 µs with these (alternated 3×).
DROP INDEX IF EXISTS profiles_phone;
CREATE INDEX profiles_phone ON profiles (tenant_id, mobile_phone) WHERE mobile_phone IS NOT NULL;
DROP INDEX IF EXISTS profiles_birth_date;
CREATE INDEX profiles_birth_date ON profiles (tenant_id, birth_date) WHERE birth_date IS NOT NULL;
