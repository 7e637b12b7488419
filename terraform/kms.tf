# Cloud KMS keys: OpenBao's auto-unseal key and the key that encrypts Kubernetes Secrets in
# etcd. Rotated every 90 days; never destroyed by Terraform (data sealed with an old version
# still needs it).

resource "google_kms_key_ring" "peregrine" {
  name     = "peregrine-${var.environment}"
  location = var.region
}

locals {
  # Key name -> what it protects.
  kms_keys = {
    "openbao-unseal"    = "OpenBao's root key (gcpckms seal)"
    "gke-secrets"       = "Kubernetes Secrets in etcd"
    "artifact-registry" = "images in Artifact Registry"
  }
}

resource "google_kms_crypto_key" "keys" {
  for_each        = local.kms_keys
  name            = each.key
  key_ring        = google_kms_key_ring.peregrine.id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = "7776000s"
  labels          = local.labels

  lifecycle {
    prevent_destroy = true
  }
}

# GKE's service agent encrypts Secrets with gke_secrets.
resource "google_kms_crypto_key_iam_member" "gke_secrets" {
  crypto_key_id = google_kms_crypto_key.keys["gke-secrets"].id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:service-${data.google_project.this.number}@container-engine-robot.iam.gserviceaccount.com"
}

# Artifact Registry's service agent encrypts images with the registry key.
resource "google_kms_crypto_key_iam_member" "registry" {
  crypto_key_id = google_kms_crypto_key.keys["artifact-registry"].id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-artifactregistry.iam.gserviceaccount.com"
}
