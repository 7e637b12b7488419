# Operator console: the appliance's control token and its own session key; nothing else.
path "secret/data/console/*" {
  capabilities = ["read"]
}
