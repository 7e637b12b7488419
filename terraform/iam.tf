# Service accounts. Nodes get a minimal account of their own (not the Compute default); each
# workload that calls a Google API gets its own account through Workload Identity, bound to
# exactly one Kubernetes service account.

resource "google_service_account" "nodes" {
  account_id   = "peregrine-${var.environment}-nodes"
  display_name = "Peregrine GKE nodes"
}

resource "google_project_iam_member" "nodes" {
  for_each = toset([
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
  ])
  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.nodes.email}"
}

resource "google_artifact_registry_repository_iam_member" "nodes_pull" {
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.reader"
  member     = "serviceAccount:${google_service_account.nodes.email}"
}

# OpenBao: encrypt/decrypt with the unseal key, nothing else.
resource "google_service_account" "openbao" {
  account_id   = "peregrine-${var.environment}-openbao"
  display_name = "Peregrine OpenBao (KMS auto-unseal)"
}

resource "google_kms_crypto_key_iam_member" "openbao_unseal" {
  crypto_key_id = google_kms_crypto_key.keys["openbao-unseal"].id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${google_service_account.openbao.email}"
}

resource "google_kms_crypto_key_iam_member" "openbao_unseal_viewer" {
  crypto_key_id = google_kms_crypto_key.keys["openbao-unseal"].id
  role          = "roles/cloudkms.viewer"
  member        = "serviceAccount:${google_service_account.openbao.email}"
}

resource "google_service_account_iam_member" "openbao_workload_identity" {
  service_account_id = google_service_account.openbao.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[peregrine-secrets/openbao]"
}

# The appliance's replicator logs in to Cloud SQL as this account (IAM database auth): no
# database password exists anywhere.
resource "google_service_account" "appliance" {
  account_id   = "peregrine-${var.environment}-appliance"
  display_name = "Peregrine appliance (Cloud SQL replica writer)"
}

resource "google_project_iam_member" "appliance_sql" {
  for_each = toset([
    "roles/cloudsql.client",
    "roles/cloudsql.instanceUser",
  ])
  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.appliance.email}"
}

resource "google_service_account_iam_member" "appliance_workload_identity" {
  service_account_id = google_service_account.appliance.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[peregrine-hotpath/appliance]"
}
