"""Talking to Flowtly: the HTTP client, resource mapping, reference IRIs, the sync side."""
