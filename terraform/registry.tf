# Artifact Registry for the appliance's image (built from the repository's Dockerfile).

resource "google_artifact_registry_repository" "images" {
  repository_id = "peregrine"
  location      = var.region
  format        = "DOCKER"
  description   = "Peregrine appliance images"
  kms_key_name  = google_kms_crypto_key.keys["artifact-registry"].id
  labels        = local.labels

  docker_config {
    immutable_tags = true
  }

  depends_on = [google_kms_crypto_key_iam_member.registry]
}
