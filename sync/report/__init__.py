"""What a run tells people and scripts: the report (`render`), literal values in it
(`literal`), the report with secrets scrubbed (`redaction`) and the structured logs
(`logs`)."""
