-- Projection checkpoints live with the tables they describe, so a rebuilt
-- read model and its checkpoint are swapped in together.
CREATE TABLE checkpoints (
    projection  text PRIMARY KEY,
    commit_pos  bigint NOT NULL,
    prepare_pos bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
