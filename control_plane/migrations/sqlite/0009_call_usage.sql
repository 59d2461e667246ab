-- What each call used of its providers: same table as ../postgres/0009_call_usage.sql
-- (uuids text, times ISO-8601 UTC text).

CREATE TABLE call_usage (
    call_id                TEXT PRIMARY KEY REFERENCES calls (id) ON DELETE CASCADE,
    org_id                 TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    llm_requests           INTEGER NOT NULL DEFAULT 0,
    llm_prompt_tokens      INTEGER NOT NULL DEFAULT 0,
    llm_completion_tokens  INTEGER NOT NULL DEFAULT 0,
    stt_seconds            REAL NOT NULL DEFAULT 0,
    tts_characters         INTEGER NOT NULL DEFAULT 0,
    tts_seconds            REAL NOT NULL DEFAULT 0,
    updated_at             TEXT NOT NULL
);
CREATE INDEX call_usage_org ON call_usage (org_id);
