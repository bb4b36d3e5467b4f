-- Undated new stories and change times take seconds no stored story holds
-- as its date or change time (published entries never share an `updated`
-- instant): change times are looked up by range.
CREATE INDEX stories_updated ON stories (updated_at);
