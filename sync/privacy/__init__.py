"""Keeping secrets and sensitive values where they belong.

`redact` scrubs configured secrets (and credentials recognisable by their form) out of
any text; `masking` hides tax ids and other sensitive field values in log events;
`files` creates files and folders only their owner can read.
"""
