-- Items matched by an [[exclude]] rule: kept, but left out of every output.
ALTER TABLE items ADD COLUMN excluded INTEGER NOT NULL DEFAULT 0;

-- Small facts about the store itself (e.g. the tag rules its tags were computed with).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
