-- Near-duplicate signatures are computed differently from here on (one
-- multiply-shift per hash function instead of a seeded xxh3), so stored ones
-- no longer compare with new ones. Old stories leave the near-duplicate index;
-- links still merge them.
UPDATE stories SET signature = NULL;

-- One integer key per LSH band (the band's number is the hash's seed). The
-- key leads the primary key, so a lookup reads story ids straight from it:
-- two B-trees per band row instead of three.
DROP TABLE story_bands;
CREATE TABLE story_bands (
    key      INTEGER NOT NULL,
    story_id INTEGER NOT NULL REFERENCES stories(id) ON DELETE CASCADE,
    PRIMARY KEY (key, story_id)
) WITHOUT ROWID;
CREATE INDEX story_bands_story ON story_bands (story_id);

-- No query orders items by date (listings go through stories.sort_date and
-- story_tags): one index less to keep up on every insert.
DROP INDEX items_sort_date;

-- The digest picks the stories first stored in its period: an index range,
-- not a scan of every story (new rows append to its end).
CREATE INDEX stories_created ON stories (created_at);
