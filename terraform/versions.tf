terraform {
  required_version = ">= 1.6"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 6.x: kubelet topology_manager, hugepages_config and placement_policy on node pools.
      version = ">= 6.30, < 8.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  labels = merge(var.labels, {
    app         = "peregrine"
    environment = var.environment
  })

  # Tier_1 networking needs a large enough machine: C3/C4 with at least 30 vCPUs. The vCPU
  # count is the last number of the machine type (c3-standard-44-lssd -> 44).
  hotpath_vcpus         = tonumber(regex("-([0-9]+)(-lssd)?$", var.hotpath_machine_type)[0])
  hotpath_tier1_allowed = local.hotpath_vcpus >= 30
  hotpath_tier1         = var.hotpath_tier1_networking && local.hotpath_tier1_allowed
}
