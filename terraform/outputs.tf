output "cluster_name" {
  description = "GKE cluster name: gcloud container clusters get-credentials <this> --region <region>."
  value       = google_container_cluster.peregrine.name
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint (reachable from master_authorized_cidrs only)."
  value       = google_container_cluster.peregrine.endpoint
  sensitive   = true
}

output "hotpath_tier1_networking" {
  description = "Whether the hot-path pool got Tier_1 networking (false when the machine type is too small for it)."
  value       = local.hotpath_tier1
}

output "image_repository" {
  description = "Docker repository to push the appliance image to."
  value       = "${google_artifact_registry_repository.images.location}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "sql_connection_name" {
  description = "Cloud SQL instance connection name (project:region:instance)."
  value       = google_sql_database_instance.replica.connection_name
}

output "sql_private_ip" {
  description = "Private address of the replica database; the appliance's replica.url points here."
  value       = google_sql_database_instance.replica.private_ip_address
}

output "sql_iam_user" {
  description = "The appliance's IAM database user name."
  value       = google_sql_user.appliance.name
}

output "appliance_service_account" {
  description = "Google service account the appliance's Kubernetes service account (peregrine-hotpath/appliance) impersonates."
  value       = google_service_account.appliance.email
}

output "openbao_service_account" {
  description = "Google service account OpenBao (peregrine-secrets/openbao) uses for KMS auto-unseal."
  value       = google_service_account.openbao.email
}

output "openbao_unseal_key" {
  description = "KMS key for OpenBao's gcpckms seal: project, region, key ring and key name."

  value = {
    project    = var.project_id
    region     = var.region
    key_ring   = google_kms_key_ring.peregrine.name
    crypto_key = google_kms_crypto_key.keys["openbao-unseal"].name
  }
}
