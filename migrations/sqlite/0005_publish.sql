-- Publishing (issue 4). When a story last changed after it was created: an
-- item joined it, or one of its items was edited. Drives the entry's <updated>.
ALTER TABLE stories ADD COLUMN updated_at INTEGER;

-- A random key of this store, part of every published entry id: a store
-- created afresh never re-issues the ids of another.
INSERT OR IGNORE INTO meta (key, value) VALUES ('store_key', lower(hex(randomblob(4))));

-- Bumped by every write that changes what is published; readers compare it
-- to know when to render again.
INSERT OR IGNORE INTO meta (key, value) VALUES ('content_version', '0');

-- Each story's tags (the union over its items) in story date order, so a
-- tag's newest stories are one index range, however rare the tag. Kept in
-- step with item_tags, items.story_id and stories.sort_date by triggers.
CREATE TABLE story_tags (
    story_id  INTEGER NOT NULL REFERENCES stories(id) ON DELETE CASCADE,
    tag       TEXT NOT NULL,
    sort_date INTEGER NOT NULL,
    PRIMARY KEY (story_id, tag)
) WITHOUT ROWID;
CREATE INDEX story_tags_newest ON story_tags (tag, sort_date DESC, story_id DESC);

INSERT OR IGNORE INTO story_tags (story_id, tag, sort_date)
SELECT i.story_id, t.tag, s.sort_date
FROM item_tags t JOIN items i ON i.id = t.item_id JOIN stories s ON s.id = i.story_id;

CREATE TRIGGER story_tags_on_tag AFTER INSERT ON item_tags BEGIN
    INSERT OR IGNORE INTO story_tags (story_id, tag, sort_date)
    SELECT i.story_id, NEW.tag, s.sort_date
    FROM items i JOIN stories s ON s.id = i.story_id WHERE i.id = NEW.item_id;
END;

CREATE TRIGGER story_tags_on_untag AFTER DELETE ON item_tags BEGIN
    DELETE FROM story_tags
    WHERE tag = OLD.tag
      AND story_id = (SELECT story_id FROM items WHERE id = OLD.item_id)
      AND NOT EXISTS (
        SELECT 1 FROM item_tags t JOIN items i ON i.id = t.item_id
        WHERE t.tag = OLD.tag
          AND i.story_id = (SELECT story_id FROM items WHERE id = OLD.item_id));
END;

CREATE TRIGGER story_tags_on_filing AFTER UPDATE OF story_id ON items
WHEN NEW.story_id IS NOT NULL BEGIN
    INSERT OR IGNORE INTO story_tags (story_id, tag, sort_date)
    SELECT NEW.story_id, t.tag, s.sort_date
    FROM item_tags t JOIN stories s ON s.id = NEW.story_id WHERE t.item_id = NEW.id;
END;

CREATE TRIGGER story_tags_on_date AFTER UPDATE OF sort_date ON stories
WHEN NEW.sort_date <> OLD.sort_date BEGIN
    UPDATE story_tags SET sort_date = NEW.sort_date WHERE story_id = NEW.id;
END;

-- Items the retention pruned: a feed that still carries one does not bring
-- it back as a new story (with a new entry id).
CREATE TABLE pruned_items (
    feed_id  INTEGER NOT NULL,
    item_key TEXT NOT NULL,
    PRIMARY KEY (feed_id, item_key)
) WITHOUT ROWID;
