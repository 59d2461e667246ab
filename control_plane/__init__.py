"""Control plane: REST API, Telnyx webhooks, call records and the metrics endpoint."""
