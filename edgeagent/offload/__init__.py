"""Recordings to S3-compatible object storage: a durable queue in the recording index, a paced uploader."""
