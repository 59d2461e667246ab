-- LLM tokens estimated for requests whose stream ended without the server's usage (a reply cut
-- off before its last chunk), kept apart from the reported figures, and the model the call used
-- (priced per model), see docs/usage.md. Same columns
-- as ../sqlite/0010_estimated_tokens.sql.

ALTER TABLE call_usage ADD COLUMN llm_estimated_requests bigint NOT NULL DEFAULT 0;
ALTER TABLE call_usage ADD COLUMN llm_estimated_prompt_tokens bigint NOT NULL DEFAULT 0;
ALTER TABLE call_usage ADD COLUMN llm_estimated_completion_tokens bigint NOT NULL DEFAULT 0;
ALTER TABLE call_usage ADD COLUMN llm_model text;
