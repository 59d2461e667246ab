-- How each turn ended, as the engine's turn policy decided it (engine/turn_outcome.py): what ended
-- it (vad, confident, recogniser, noise, keys, words, hold_ran_out, final_late), the last hold's
-- verdict (incomplete, unsure), whether the caller's pitch contour decided it, what became of the
-- speculative reply (kept, restarted, none), and whether more "speech" after its end merged it
-- into a longer turn. NULL end_reason: a turn recorded without that account (before this
-- migration, or keys before the caller first spoke). Same columns as ../sqlite/0011_turn_outcome.sql.

ALTER TABLE turns ADD COLUMN end_reason text;
ALTER TABLE turns ADD COLUMN hold text;
ALTER TABLE turns ADD COLUMN contour boolean NOT NULL DEFAULT false;
ALTER TABLE turns ADD COLUMN speculation text;
ALTER TABLE turns ADD COLUMN merged boolean NOT NULL DEFAULT false;
