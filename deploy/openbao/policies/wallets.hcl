# Wallets (wallet-daemons/, `peregrine wallets run`): the HD seed of each currency in the KV v2
# engine `peregrine-wallets`, made once and read to derive addresses and sign withdrawals
# in memory — the same rule as `peregrine_wallet::keys::wallet_policy("peregrine-wallets")`
# (peregrine/tests/deploy_policies.rs checks that they agree and applies this file to a real
# OpenBao). No update (not even this token can replace a seed), no list, no delete.
path "peregrine-wallets/data/seeds/*" {
  capabilities = ["create", "read"]
}

# Never: identity's TOTP keys, JWT key or API-key secrets (explicit, so a token that also
# carries another policy still cannot).
path "totp/*" {
  capabilities = ["deny"]
}

path "transit/*" {
  capabilities = ["deny"]
}
