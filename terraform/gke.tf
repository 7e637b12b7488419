# GKE Standard, regional: the control plane is replicated across the region's zones. Private
# nodes, Dataplane V2 (eBPF; it enforces NetworkPolicy itself), Workload Identity.

resource "google_container_cluster" "peregrine" {
  #checkov:skip=CKV_GCP_70:Hot-path node pools pin their version (auto-upgrade off, upgraded by hand in the maintenance window); GKE refuses auto_upgrade = false under a release channel.
  #checkov:skip=CKV_GCP_12:Dataplane V2 (ADVANCED_DATAPATH) enforces NetworkPolicy itself; the legacy Calico network_policy block must stay off with it.
  #checkov:skip=CKV_GCP_24:PodSecurityPolicy was removed in Kubernetes 1.25; Pod Security Admission (namespace labels in deploy/k8s) replaces it.
  name     = "peregrine-${var.environment}"
  location = var.region

  network    = google_compute_network.vpc.id
  subnetwork = google_compute_subnetwork.nodes.id

  # Node pools are managed below; the default pool is removed at creation.
  remove_default_node_pool = true
  initial_node_count       = 1
  deletion_protection      = true

  datapath_provider           = "ADVANCED_DATAPATH"
  enable_intranode_visibility = true
  enable_shielded_nodes       = true

  resource_labels = {
    app         = "peregrine"
    environment = var.environment
  }

  # Applies to the default pool only for the moment before it is removed; every pool below
  # sets the same.
  node_config {
    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }

  release_channel {
    channel = "UNSPECIFIED"
  }

  ip_allocation_policy {
    cluster_secondary_range_name  = "pods"
    services_secondary_range_name = "services"
  }

  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = false
    master_ipv4_cidr_block  = var.master_cidr

    master_global_access_config {
      enabled = false
    }
  }

  master_authorized_networks_config {
    dynamic "cidr_blocks" {
      for_each = var.master_authorized_cidrs
      content {
        cidr_block   = cidr_blocks.value
        display_name = "operators-${cidr_blocks.key}"
      }
    }
  }

  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }

  workload_identity_config {
    workload_pool = "${var.project_id}.svc.id.goog"
  }

  authenticator_groups_config {
    security_group = var.rbac_group
  }

  binary_authorization {
    evaluation_mode = "PROJECT_SINGLETON_POLICY_ENFORCE"
  }

  database_encryption {
    state    = "ENCRYPTED"
    key_name = google_kms_crypto_key.keys["gke-secrets"].id
  }

  logging_config {
    enable_components = ["SYSTEM_COMPONENTS", "WORKLOADS"]
  }

  monitoring_config {
    enable_components = ["SYSTEM_COMPONENTS"]

    managed_prometheus {
      enabled = true
    }
  }

  maintenance_policy {
    recurring_window {
      start_time = var.hotpath_maintenance_start
      end_time   = var.hotpath_maintenance_end
      recurrence = var.hotpath_maintenance_recurrence
    }
  }

  depends_on = [google_kms_crypto_key_iam_member.gke_secrets]
}
