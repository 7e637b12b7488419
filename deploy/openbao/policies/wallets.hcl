# Wallets (wallet-daemons/): signs hot-wallet withdrawals with transit keys that never leave
# OpenBao; reads its chain RPC credentials. It cannot export, delete or rotate a key.
path "secret/data/wallets/*" {
  capabilities = ["read"]
}

path "transit/sign/wallets-hot-*" {
  capabilities = ["update"]
}

path "transit/keys/wallets-hot-*" {
  capabilities = ["read"]
}

path "transit/export/*" {
  capabilities = ["deny"]
}
