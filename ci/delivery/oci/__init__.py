"""OCI distribution client: blobs, references, registry auth, and streaming push/pull."""
