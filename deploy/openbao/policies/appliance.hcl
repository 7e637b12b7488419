# The appliance (hot path): no OpenBao access at all. Its NetworkPolicy cannot reach OpenBao,
# and this policy grants nothing, so even a token leaked to it reads no secret. Its QUIC TLS
# key is a Kubernetes Secret in its own namespace; its database login is IAM (no password).
path "sys/*" {
  capabilities = ["deny"]
}

path "secret/*" {
  capabilities = ["deny"]
}
