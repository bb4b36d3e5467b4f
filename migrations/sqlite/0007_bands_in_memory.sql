-- The near-duplicate (LSH band) index is held in memory by the process that
-- writes, built from stories.signature: a band table cost each new item 16
-- random index seeks to read and 32 B-tree inserts to write.
DROP TABLE story_bands;
DELETE FROM meta WHERE key = 'bands_pruned_before';
