# Provisioner: the token in identity's `[auth.openbao] token_file` (and an operator's bootstrap
# of the wallets). It makes the engines, keys, policies and component tokens — what
# `peregrine_auth::vault::provision` does at each `up` — and reads no secret: no TOTP code, no
# signature, no decryption, no seed. peregrine/tests/deploy_policies.rs applies it to a real
# OpenBao and checks both.
#
# Engines: identity's totp, transit and KV v2, the wallets' KV v2 (mounting is root-protected:
# sudo).
path "sys/mounts/totp" {
  capabilities = ["create", "update", "sudo"]
}

path "sys/mounts/transit" {
  capabilities = ["create", "update", "sudo"]
}

path "sys/mounts/peregrine-identity" {
  capabilities = ["create", "update", "sudo"]
}

path "sys/mounts/peregrine-wallets" {
  capabilities = ["create", "update", "sudo"]
}

# Identity's transit keys: created if missing (an existing key is left as it is).
path "transit/keys/identity-jwt" {
  capabilities = ["create", "update"]
}

path "transit/keys/identity-api-keys" {
  capabilities = ["create", "update"]
}

path "transit/keys/kyc-documents" {
  capabilities = ["create", "update"]
}

# The components' policies, by name.
path "sys/policies/acl/peregrine-identity" {
  capabilities = ["create", "update"]
}

path "sys/policies/acl/peregrine-wallets" {
  capabilities = ["create", "update"]
}

# Component tokens carry policies the provisioner does not hold itself: sudo lifts the
# subset rule of auth/token/create.
path "auth/token/create" {
  capabilities = ["create", "update", "sudo"]
}

# Never: a secret.
path "totp/code/*" {
  capabilities = ["deny"]
}

path "transit/sign/*" {
  capabilities = ["deny"]
}

path "transit/decrypt/*" {
  capabilities = ["deny"]
}

path "transit/datakey/*" {
  capabilities = ["deny"]
}

path "transit/export/*" {
  capabilities = ["deny"]
}

path "peregrine-identity/*" {
  capabilities = ["deny"]
}

path "peregrine-wallets/*" {
  capabilities = ["deny"]
}
