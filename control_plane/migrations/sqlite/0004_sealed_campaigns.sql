-- Sealed campaign agent_config and caller numbers: same columns as ../postgres/0004_sealed_campaigns.sql.
ALTER TABLE campaigns ADD COLUMN agent_config_enc TEXT;
ALTER TABLE campaigns ADD COLUMN from_enc TEXT;
ALTER TABLE campaign_dialer ADD COLUMN config_enc TEXT;
