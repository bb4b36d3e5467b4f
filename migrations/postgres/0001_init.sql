-- gazette's store on PostgreSQL: the same tables as the SQLite store (times
-- in unix seconds, ids assigned by gazette under its filing lock), so a
-- store moves between the two with `gazette db copy` unchanged.

CREATE TABLE feeds (
    id              BIGSERIAL PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    url             TEXT NOT NULL,
    priority        BIGINT NOT NULL DEFAULT 0,
    title           TEXT,
    site_link       TEXT,
    etag            TEXT,
    last_modified   TEXT,
    permanent_url   TEXT,
    status          TEXT NOT NULL DEFAULT 'new',
    last_error      TEXT,
    error_count     BIGINT NOT NULL DEFAULT 0,
    last_fetch_at   BIGINT,
    last_success_at BIGINT,
    next_fetch_at   BIGINT,
    ttl_seconds     BIGINT,
    -- When the feed is next due (any instance may fetch it then), and which
    -- instance holds it until when.
    due_at          BIGINT,
    lease_owner     TEXT,
    lease_until     BIGINT
);

CREATE TABLE stories (
    id         BIGINT PRIMARY KEY,
    signature  BYTEA,
    sort_date  BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT
);
CREATE INDEX stories_sort_date ON stories (sort_date DESC, id DESC);
CREATE INDEX stories_created ON stories (created_at);

CREATE TABLE items (
    id             BIGINT PRIMARY KEY,
    feed_id        BIGINT NOT NULL REFERENCES feeds(id),
    item_key       TEXT NOT NULL,
    raw_hash       BIGINT NOT NULL,
    guid           TEXT,
    link           TEXT,
    title          TEXT NOT NULL,
    summary_html   BYTEA,
    content_html   BYTEA,
    excerpt        TEXT NOT NULL,
    authors        TEXT NOT NULL,
    categories     TEXT NOT NULL,
    enclosures     TEXT NOT NULL,
    published      BIGINT,
    updated        BIGINT,
    first_seen     BIGINT NOT NULL,
    sort_date      BIGINT NOT NULL,
    canonical_link TEXT,
    excluded       BIGINT NOT NULL DEFAULT 0,
    story_id       BIGINT REFERENCES stories(id),
    merge_reason   TEXT,
    merge_score    DOUBLE PRECISION,
    UNIQUE (feed_id, item_key)
);
CREATE INDEX items_canonical_link ON items (canonical_link);
CREATE INDEX items_story ON items (story_id);

CREATE TABLE item_tags (
    item_id BIGINT NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    tag     TEXT NOT NULL,
    PRIMARY KEY (item_id, tag)
);
CREATE INDEX item_tags_tag ON item_tags (tag, item_id);

-- Each tag's stories by date, kept by the triggers below.
CREATE TABLE story_tags (
    story_id  BIGINT NOT NULL REFERENCES stories(id) ON DELETE CASCADE,
    tag       TEXT NOT NULL,
    sort_date BIGINT NOT NULL,
    PRIMARY KEY (story_id, tag)
);
CREATE INDEX story_tags_newest ON story_tags (tag, sort_date DESC, story_id DESC);

CREATE FUNCTION story_tags_on_tag() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO story_tags (story_id, tag, sort_date)
    SELECT i.story_id, NEW.tag, s.sort_date
    FROM items i JOIN stories s ON s.id = i.story_id WHERE i.id = NEW.item_id
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER story_tags_on_tag AFTER INSERT ON item_tags
    FOR EACH ROW EXECUTE FUNCTION story_tags_on_tag();

CREATE FUNCTION story_tags_on_untag() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    story BIGINT;
BEGIN
    SELECT story_id INTO story FROM items WHERE id = OLD.item_id;
    DELETE FROM story_tags
    WHERE tag = OLD.tag AND story_id = story
      AND NOT EXISTS (
        SELECT 1 FROM item_tags t JOIN items i ON i.id = t.item_id
        WHERE t.tag = OLD.tag AND i.story_id = story);
    RETURN NULL;
END $$;
CREATE TRIGGER story_tags_on_untag AFTER DELETE ON item_tags
    FOR EACH ROW EXECUTE FUNCTION story_tags_on_untag();

CREATE FUNCTION story_tags_on_date() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE story_tags SET sort_date = NEW.sort_date WHERE story_id = NEW.id;
    RETURN NULL;
END $$;
CREATE TRIGGER story_tags_on_date AFTER UPDATE OF sort_date ON stories
    FOR EACH ROW WHEN (NEW.sort_date <> OLD.sort_date)
    EXECUTE FUNCTION story_tags_on_date();

CREATE TABLE pruned_items (
    feed_id  BIGINT NOT NULL,
    item_key TEXT NOT NULL,
    PRIMARY KEY (feed_id, item_key)
);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO meta (key, value) VALUES
    ('store_key', substr(md5(random()::text || clock_timestamp()::text), 1, 8)),
    ('content_version', '0');

CREATE TABLE digest_periods (
    id         BIGSERIAL PRIMARY KEY,
    start_at   BIGINT NOT NULL,
    cutoff_at  BIGINT NOT NULL UNIQUE,
    stories    BIGINT NOT NULL,
    status     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE digest_deliveries (
    period_id  BIGINT NOT NULL REFERENCES digest_periods(id),
    recipient  TEXT NOT NULL,
    position   BIGINT NOT NULL,
    state      TEXT NOT NULL,
    message_id TEXT NOT NULL,
    attempts   BIGINT NOT NULL DEFAULT 0,
    permanent  BIGINT NOT NULL DEFAULT 0,
    reply      TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (period_id, recipient)
);
