-- One row per digest period (cron fire time), whether sent or skipped.
CREATE TABLE digest_periods (
    id         INTEGER PRIMARY KEY,
    start_at   INTEGER NOT NULL,           -- stories published at or after (unix seconds)
    cutoff_at  INTEGER NOT NULL UNIQUE,    -- ... and before this scheduled time
    stories    INTEGER NOT NULL,
    status     TEXT NOT NULL,              -- open | done | skipped
    created_at INTEGER NOT NULL
);

-- One row per (period, recipient): queued -> pending (just before the
-- transport is called) -> sent (with its Message-ID) or failed (with the reply).
CREATE TABLE digest_deliveries (
    period_id  INTEGER NOT NULL REFERENCES digest_periods(id),
    recipient  TEXT NOT NULL,
    position   INTEGER NOT NULL,
    state      TEXT NOT NULL,
    message_id TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    permanent  INTEGER NOT NULL DEFAULT 0,
    reply      TEXT,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (period_id, recipient)
);
