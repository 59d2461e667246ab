-- The stream recovery sweep (control_plane/recovery.py) lists the calls still answered every few
-- seconds, to find those whose media stream was lost: only they are indexed.
CREATE INDEX calls_answered ON calls (answered_at) WHERE status = 'answered';
