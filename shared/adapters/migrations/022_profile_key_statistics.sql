-- Tell the planner the shape of the profiles' key, whatever the sample says: tenants are
-- few and large, and a profile id names (nearly) one profile. Without it, statistics
-- taken while many small tenants share ids such as 'c1' (a young or a test database)
-- rate a tenant at about one row: a look-up of (tenant, profile id) then goes through a
-- secondary index on (tenant_id, …) filtering on profile_id, which scans the whole tenant
-- once per row, and a bulk import of a new tenant became quadratic (minutes for 60,000
-- rows in a clean CI run). The overrides take effect at the next ANALYZE, run here.
ALTER TABLE profiles ALTER COLUMN tenant_id SET (n_distinct = 1);
ALTER TABLE profiles ALTER COLUMN profile_id SET (n_distinct = -1);
ANALYZE profiles;
