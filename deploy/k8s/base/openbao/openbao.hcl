# OpenBao server: Raft storage on each pod's volume, auto-unsealed by Cloud KMS (the key
# terraform/kms.tf makes; the pod's Google account may only encrypt and decrypt with it).
ui            = false
disable_mlock = true

listener "tcp" {
  address         = "0.0.0.0:8200"
  cluster_address = "0.0.0.0:8201"
  # TLS terminates at the pod with the certificate mounted from the openbao-tls Secret.
  tls_cert_file = "/openbao/tls/tls.crt"
  tls_key_file  = "/openbao/tls/tls.key"
}

storage "raft" {
  path = "/openbao/data"

  retry_join {
    leader_api_addr = "https://openbao-0.openbao-internal:8200"
  }
  retry_join {
    leader_api_addr = "https://openbao-1.openbao-internal:8200"
  }
  retry_join {
    leader_api_addr = "https://openbao-2.openbao-internal:8200"
  }
}

seal "gcpckms" {
  # Set by the overlay from `terraform output openbao_unseal_key`.
  project    = "PROJECT_ID"
  region     = "REGION"
  key_ring   = "peregrine-prod"
  crypto_key = "openbao-unseal"
}

api_addr     = "https://openbao.peregrine-secrets.svc:8200"
cluster_addr = "https://$(POD_NAME).openbao-internal:8201"
