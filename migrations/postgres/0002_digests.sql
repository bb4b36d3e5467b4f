-- Several digests (issue 16): periods belong to a digest (rows written
-- before belong to the single `[digest]`, named "digest") and are unique per
-- (digest, cutoff); a delivery remembers the reader's topics and may be
-- `skipped`.
ALTER TABLE digest_periods ADD COLUMN digest TEXT NOT NULL DEFAULT 'digest';
ALTER TABLE digest_periods DROP CONSTRAINT digest_periods_cutoff_at_key;
ALTER TABLE digest_periods ADD CONSTRAINT digest_periods_digest_cutoff UNIQUE (digest, cutoff_at);
CREATE INDEX digest_periods_open ON digest_periods (status, digest);
ALTER TABLE digest_deliveries ADD COLUMN topics TEXT NOT NULL DEFAULT '';

-- Readers who unsubscribed from a digest: never mailed by it again.
CREATE TABLE digest_suppressions (
    digest    TEXT NOT NULL,
    recipient TEXT NOT NULL,
    at        BIGINT NOT NULL,
    how       TEXT NOT NULL,
    PRIMARY KEY (digest, recipient)
);

-- Every sent period's issue, as a web page without per-reader parts.
CREATE TABLE digest_issues (
    period_id  BIGINT PRIMARY KEY REFERENCES digest_periods(id),
    digest     TEXT NOT NULL,
    slug       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    html       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (digest, slug)
);
