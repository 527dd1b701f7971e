-- Who wrote a room's current name and description: a forgotten user's
-- words are rewritten, another user's rename of the same room is not.
ALTER TABLE conversations
    ADD COLUMN name_by        bigint,
    ADD COLUMN description_by bigint;
UPDATE conversations
   SET name_by = CASE WHEN name IS NOT NULL THEN created_by END,
       description_by = CASE WHEN description IS NOT NULL THEN created_by END;
