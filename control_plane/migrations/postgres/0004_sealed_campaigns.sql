-- A campaign's agent_config (prompt, variables, tool URLs and headers) and caller numbers are
-- sealed like a call's (issue 14 item 7). New rows leave agent_config '{}', from_number NULL and
-- campaign_dialer.config '{}'; rows written before still read from those columns until
-- CampaignStore.seal_plaintext_rows() (run by the dialer at start) seals them.
ALTER TABLE campaigns ADD COLUMN agent_config_enc text;
ALTER TABLE campaigns ADD COLUMN from_enc text;
ALTER TABLE campaign_dialer ADD COLUMN config_enc text;
