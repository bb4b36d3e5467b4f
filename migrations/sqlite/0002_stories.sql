-- Stories: one per event, gathering the items that report it (issue 3).
ALTER TABLE feeds ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;

CREATE TABLE stories (
    id         INTEGER PRIMARY KEY,
    signature  BLOB,
    sort_date  INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX stories_sort_date ON stories (sort_date DESC, id DESC);

-- MinHash LSH bands of each story's signature: candidates for near duplicates.
CREATE TABLE story_bands (
    band     INTEGER NOT NULL,
    hash     INTEGER NOT NULL,
    story_id INTEGER NOT NULL REFERENCES stories(id) ON DELETE CASCADE
);
CREATE INDEX story_bands_lookup ON story_bands (band, hash);
CREATE INDEX story_bands_story ON story_bands (story_id);

ALTER TABLE items ADD COLUMN canonical_link TEXT;
ALTER TABLE items ADD COLUMN story_id INTEGER REFERENCES stories(id);
ALTER TABLE items ADD COLUMN merge_reason TEXT;
ALTER TABLE items ADD COLUMN merge_score REAL;
CREATE INDEX items_canonical_link ON items (canonical_link);
CREATE INDEX items_story ON items (story_id);

-- Items stored before stories existed each become a story of their own.
INSERT INTO stories (id, sort_date, created_at) SELECT id, sort_date, first_seen FROM items;
UPDATE items SET story_id = id, merge_reason = 'first';
