# Identity (auth/, `peregrine up`'s [auth]): exactly the paths the code uses — the same rules
# as `peregrine_auth::vault::VaultConfig::policy_hcl()` with the default names (mounts `totp`
# and `transit`), which `up` writes as policy `peregrine-identity` when it provisions itself;
# peregrine/tests/deploy_policies.rs checks that the two agree and applies this file to a real
# OpenBao.
#
# TOTP: one key per user, `user-<uid>`: made at enrolment, deleted when 2FA is turned off,
# asked whether a code is valid. The secret never leaves OpenBao (no read of the key).
path "totp/keys/user-*" {
  capabilities = ["create", "update", "delete"]
}

path "totp/code/user-*" {
  capabilities = ["update"]
}

# Access JWTs: signed by the ed25519 transit key; its public halves read for the JWKS.
# Rotation and deletion are an operator's act, not identity's.
path "transit/sign/identity-jwt" {
  capabilities = ["update"]
}

path "transit/keys/identity-jwt" {
  capabilities = ["read"]
}

# API-key HMAC secrets at rest: transit ciphertext in identity's store.
path "transit/encrypt/identity-api-keys" {
  capabilities = ["update"]
}

path "transit/decrypt/identity-api-keys" {
  capabilities = ["update"]
}

# KYC documents: each sealed under a data key this transit key wraps (KYC makes the key at
# start if the provisioner has not).
path "transit/keys/kyc-documents" {
  capabilities = ["create", "update"]
}

path "transit/datakey/plaintext/kyc-documents" {
  capabilities = ["update"]
}

path "transit/decrypt/kyc-documents" {
  capabilities = ["update"]
}

# The KYC provider webhook's HMAC secret (field `secret`): written by an operator, followed by
# identity (a new version is taken within a refresh, the old one accepted for a grace window).
path "peregrine-identity/data/kyc/webhook" {
  capabilities = ["read"]
}

# Never: the wallets' seeds, exporting or backing up any transit key (explicit, so a token
# that also carries another policy still cannot).
path "peregrine-wallets/*" {
  capabilities = ["deny"]
}

path "transit/export/*" {
  capabilities = ["deny"]
}

path "transit/backup/*" {
  capabilities = ["deny"]
}
