-- The stream recovery sweep: same index as ../postgres/0005_live_calls.sql.
CREATE INDEX calls_answered ON calls (answered_at) WHERE status = 'answered';
