"""Transport and request security: TLS/mTLS files, HMAC request signing, the cluster-side gateway, dev certs."""
