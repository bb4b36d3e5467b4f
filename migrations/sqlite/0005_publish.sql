-- Publishing (issue 4). When a story last changed after it was created: an
-- item joined it, or one of its items was edited. Drives the entry's <updated>.
ALTER TABLE stories ADD COLUMN updated_at INTEGER;

-- A random key of this store, part of every published entry id: a store
-- created afresh never re-issues the ids of another.
INSERT OR IGNORE INTO meta (key, value) VALUES ('store_key', lower(hex(randomblob(4))));

-- Bumped by every write that changes what is published; readers compare it
-- to know when to render again.
INSERT OR IGNORE INTO meta (key, value) VALUES ('content_version', '0');
