"""The Scaleway connector: credentials and settings (config), the SDK and boto3 behind retries
and a call log (api), S3 streams (s3stream), what there is to back up (inventory), whether it
can be (preflight), and the backup and restore flows (flows)."""
