-- Several digests (issue 16): periods belong to a digest (rows written
-- before belong to the single `[digest]`, named "digest") and are unique per
-- (digest, cutoff); a delivery remembers the reader's topics and may be
-- `skipped`. Rebuilt tables (SQLite cannot drop a UNIQUE constraint): the
-- new ones are filled, the old dropped child first, then renamed (which
-- repoints the deliveries' foreign key).
CREATE TABLE digest_periods_v2 (
    id         INTEGER PRIMARY KEY,
    digest     TEXT NOT NULL DEFAULT 'digest',
    start_at   INTEGER NOT NULL,
    cutoff_at  INTEGER NOT NULL,
    stories    INTEGER NOT NULL,
    status     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (digest, cutoff_at)
);
INSERT INTO digest_periods_v2 (id, digest, start_at, cutoff_at, stories, status, created_at)
    SELECT id, 'digest', start_at, cutoff_at, stories, status, created_at FROM digest_periods;

CREATE TABLE digest_deliveries_v2 (
    period_id  INTEGER NOT NULL REFERENCES digest_periods_v2(id),
    recipient  TEXT NOT NULL,
    position   INTEGER NOT NULL,
    state      TEXT NOT NULL,
    message_id TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    permanent  INTEGER NOT NULL DEFAULT 0,
    reply      TEXT,
    updated_at INTEGER NOT NULL,
    topics     TEXT NOT NULL DEFAULT '',   -- space-separated; empty: every section
    PRIMARY KEY (period_id, recipient)
);
INSERT INTO digest_deliveries_v2 (period_id, recipient, position, state, message_id, attempts, permanent, reply, updated_at)
    SELECT period_id, recipient, position, state, message_id, attempts, permanent, reply, updated_at FROM digest_deliveries;

DROP TABLE digest_deliveries;
DROP TABLE digest_periods;
ALTER TABLE digest_periods_v2 RENAME TO digest_periods;
ALTER TABLE digest_deliveries_v2 RENAME TO digest_deliveries;
CREATE INDEX digest_periods_open ON digest_periods (status, digest);

-- Readers who unsubscribed from a digest: never mailed by it again.
CREATE TABLE digest_suppressions (
    digest    TEXT NOT NULL,
    recipient TEXT NOT NULL,               -- lower-case address
    at        INTEGER NOT NULL,
    how       TEXT NOT NULL,               -- one-click | web | cli
    PRIMARY KEY (digest, recipient)
);

-- Every sent period's issue, as a web page without per-reader parts.
CREATE TABLE digest_issues (
    period_id  INTEGER PRIMARY KEY REFERENCES digest_periods(id),
    digest     TEXT NOT NULL,
    slug       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    html       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (digest, slug)
);
