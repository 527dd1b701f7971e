-- The request that holds an idempotency key's claim. A request that finds
-- a claim without a message takes it over before appending, and only the
-- holder may release it: a refused request cannot free a key that another
-- request is appending under.
ALTER TABLE send_keys ADD COLUMN owner uuid;
