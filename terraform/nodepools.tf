# Node pools. The hot path gets dedicated, pinned, tuned nodes nobody else schedules on; the
# control plane autoscales on ordinary machines.

resource "google_container_node_pool" "hotpath" {
  #checkov:skip=CKV_GCP_10:Auto-upgrade is off on purpose: an upgrade drains the matching engine; the hot path is upgraded by hand inside the maintenance window.
  name     = "hotpath"
  cluster  = google_container_cluster.peregrine.id
  location = var.region
  # Compact placement needs one zone: the nodes sit close together for the lowest latency.
  node_locations = [var.hotpath_zone]
  node_count     = var.hotpath_node_count

  management {
    auto_upgrade = false
    auto_repair  = true
  }

  upgrade_settings {
    max_surge       = 0
    max_unavailable = 1
  }

  placement_policy {
    type = "COMPACT"
  }

  network_config {
    network_performance_config {
      total_egress_bandwidth_tier = local.hotpath_tier1 ? "TIER_1" : "DEFAULT"
    }
  }

  node_config {
    machine_type    = var.hotpath_machine_type
    image_type      = "COS_CONTAINERD"
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    tags            = ["peregrine-hotpath"]

    labels = merge(local.labels, {
      "peregrine.io/pool" = "hotpath"
    })

    taint {
      key    = "peregrine.io/hotpath"
      value  = "true"
      effect = "NO_SCHEDULE"
    }

    gvnic {
      enabled = true
    }

    # Raw NVMe block devices: the journal writes with O_DIRECT, and a local PersistentVolume
    # (deploy/k8s/base/storage.yaml) hands one to the appliance pod.
    local_nvme_ssd_block_config {
      local_ssd_count = var.hotpath_local_ssd_count
    }

    kubelet_config {
      # Exclusive whole cores for Guaranteed pods with integer CPU requests.
      cpu_manager_policy = "static"
      cpu_cfs_quota      = false
      pod_pids_limit     = 4096

      insecure_kubelet_readonly_port_enabled = "FALSE"

      # CPUs, memory and the NIC of a pod on one NUMA node, or the pod is refused.
      topology_manager {
        policy = "single-numa-node"
        scope  = "pod"
      }

      memory_manager {
        policy = "Static"
      }
    }

    linux_node_config {
      sysctls = {
        "net.core.rmem_max"           = "8388608"
        "net.core.wmem_max"           = "8388608"
        "net.core.busy_poll"          = "50"
        "net.core.busy_read"          = "50"
        "net.core.netdev_max_backlog" = "30000"
      }

      hugepages_config {
        hugepage_size_2m = var.hotpath_hugepages_2m
      }
    }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }

    metadata = {
      disable-legacy-endpoints = "true"
    }
  }
}

locals {
  # The control pools: on-demand for identity, wallets and OpenBao; Spot (tainted, so only
  # Deployments that tolerate a reclaim at 30 s notice land there) for the stateless rest.
  control_pools = merge(
    {
      control = { spot = false, min = var.control_min_nodes, max = var.control_max_nodes }
    },
    var.control_spot_max_nodes > 0 ? {
      control-spot = { spot = true, min = 0, max = var.control_spot_max_nodes }
    } : {},
  )
}

resource "google_container_node_pool" "control" {
  for_each = local.control_pools
  name     = each.key
  cluster  = google_container_cluster.peregrine.id
  location = var.region

  autoscaling {
    min_node_count = each.value.min
    max_node_count = each.value.max
  }

  management {
    auto_upgrade = true
    auto_repair  = true
  }

  node_config {
    machine_type    = var.control_machine_type
    image_type      = "COS_CONTAINERD"
    spot            = each.value.spot
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]

    labels = merge(local.labels, {
      "peregrine.io/pool" = each.key
    })

    dynamic "taint" {
      for_each = each.value.spot ? ["spot"] : []
      content {
        key    = "cloud.google.com/gke-spot"
        value  = "true"
        effect = "NO_SCHEDULE"
      }
    }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }

    metadata = {
      disable-legacy-endpoints = "true"
    }
  }
}
