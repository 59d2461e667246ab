-- What each call used of its providers (issue 18): LLM tokens as the model's server reported
-- them, audio sent to speech-to-text, text and audio from text-to-speech. One row per call,
-- added to by each agent that ran on it (a stream picked up again adds its own). Call minutes
-- and Telnyx's call.cost stay on the call row. Same table as ../sqlite/0009_call_usage.sql.

CREATE TABLE call_usage (
    call_id                uuid PRIMARY KEY REFERENCES calls (id) ON DELETE CASCADE,
    org_id                 uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    llm_requests           bigint NOT NULL DEFAULT 0,
    llm_prompt_tokens      bigint NOT NULL DEFAULT 0,
    llm_completion_tokens  bigint NOT NULL DEFAULT 0,
    stt_seconds            double precision NOT NULL DEFAULT 0,
    tts_characters         bigint NOT NULL DEFAULT 0,
    tts_seconds            double precision NOT NULL DEFAULT 0,
    updated_at             timestamptz NOT NULL
);
CREATE INDEX call_usage_org ON call_usage (org_id);
