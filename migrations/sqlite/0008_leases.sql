-- When each feed is next due, and which process holds it until when: the
-- daemon leases a feed before fetching it and writes its next due time back
-- with its fetch state (the same columns as the PostgreSQL store, where
-- several instances share the feeds).
ALTER TABLE feeds ADD COLUMN due_at INTEGER;
ALTER TABLE feeds ADD COLUMN lease_owner TEXT;
ALTER TABLE feeds ADD COLUMN lease_until INTEGER;
