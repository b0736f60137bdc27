-- What a media request is priced by (usage events' `units`): images with the size and quality
-- that price them, characters of speech input, seconds of transcribed audio. NULL for chat and
-- embeddings, which count tokens only (docs/media.md).
ALTER TABLE usage_ledger
    ADD COLUMN images integer,
    ADD COLUMN image_size text,
    ADD COLUMN image_quality text,
    ADD COLUMN characters bigint,
    ADD COLUMN audio_seconds numeric(14, 3);
