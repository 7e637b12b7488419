# Identity (auth/): its own configuration and JWT signing key, and a transit key to encrypt
# 2FA seeds at rest. Nothing of the wallets'.
path "secret/data/identity/*" {
  capabilities = ["read"]
}

path "secret/metadata/identity/*" {
  capabilities = ["list"]
}

path "transit/encrypt/identity-totp" {
  capabilities = ["update"]
}

path "transit/decrypt/identity-totp" {
  capabilities = ["update"]
}
