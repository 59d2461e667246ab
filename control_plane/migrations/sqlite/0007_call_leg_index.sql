-- call.recording.saved carries no call_control_id in Telnyx's SDK model, and no client_state when
-- the recording was started elsewhere (the portal, another app): its call_leg_id finds the call.
CREATE INDEX calls_call_leg_id ON calls (call_leg_id) WHERE call_leg_id IS NOT NULL;
