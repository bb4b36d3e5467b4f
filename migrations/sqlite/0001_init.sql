-- Feeds and their fetch state; one row per [[feeds]] name.
CREATE TABLE feeds (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    url             TEXT NOT NULL,
    title           TEXT,
    site_link       TEXT,
    etag            TEXT,
    last_modified   TEXT,
    permanent_url   TEXT,
    status          TEXT NOT NULL DEFAULT 'new',
    last_error      TEXT,
    error_count     INTEGER NOT NULL DEFAULT 0,
    last_fetch_at   INTEGER,
    last_success_at INTEGER,
    next_fetch_at   INTEGER,
    ttl_seconds     INTEGER
);

-- Normalised items; (feed, item_key) is the identity of an item within its feed.
CREATE TABLE items (
    id           INTEGER PRIMARY KEY,
    feed_id      INTEGER NOT NULL REFERENCES feeds(id),
    item_key     TEXT NOT NULL,
    raw_hash     INTEGER NOT NULL,
    guid         TEXT,
    link         TEXT,
    title        TEXT NOT NULL,
    summary_html TEXT,
    content_html TEXT,
    excerpt      TEXT NOT NULL,
    authors      TEXT NOT NULL,
    categories   TEXT NOT NULL,
    enclosures   TEXT NOT NULL,
    published    INTEGER,
    updated      INTEGER,
    first_seen   INTEGER NOT NULL,
    sort_date    INTEGER NOT NULL,
    UNIQUE (feed_id, item_key)
);
CREATE INDEX items_sort_date ON items (sort_date DESC, id DESC);

CREATE TABLE item_tags (
    item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    tag     TEXT NOT NULL,
    PRIMARY KEY (item_id, tag)
);
CREATE INDEX item_tags_tag ON item_tags (tag, item_id);
