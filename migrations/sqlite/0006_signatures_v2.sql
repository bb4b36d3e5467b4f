-- Near-duplicate signatures are computed differently from here on (one
-- multiply-shift per hash function instead of a seeded xxh3), so stored ones
-- no longer compare with new ones. Old stories leave the near-duplicate index;
-- links still merge them.
DELETE FROM story_bands;
UPDATE stories SET signature = NULL;
