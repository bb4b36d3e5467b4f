-- Near-duplicate signatures are computed differently from here on (one
-- multiply-shift per hash function instead of a seeded xxh3), so stored ones
-- no longer compare with new ones. Old stories leave the near-duplicate index;
-- links still merge them.
UPDATE stories SET signature = NULL;

-- One integer key per LSH band (the band's number is the hash's seed).
DROP TABLE story_bands;
CREATE TABLE story_bands (
    key      INTEGER NOT NULL,
    story_id INTEGER NOT NULL REFERENCES stories(id) ON DELETE CASCADE
);
CREATE INDEX story_bands_lookup ON story_bands (key);
CREATE INDEX story_bands_story ON story_bands (story_id);
