# Inputs. Every variable says what it sets; defaults are a production-shaped single-region
# appliance. Required: project_id, quic_client_cidrs, master_authorized_cidrs, rbac_group.

variable "project_id" {
  description = "GCP project that holds every resource."
  type        = string
}

variable "region" {
  description = "Region of the cluster, the Cloud SQL instance and the registry."
  type        = string
  default     = "europe-west4"
}

variable "hotpath_zone" {
  description = "Zone of the hot-path node pool: a compact placement policy keeps its nodes in one zone, close together."
  type        = string
  default     = "europe-west4-b"
}

variable "environment" {
  description = "Name of the environment (prod, staging); part of resource names and labels."
  type        = string
  default     = "prod"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}$", var.environment))
    error_message = "environment: lower-case letters, digits and dashes, 2 to 16 characters."
  }
}

variable "labels" {
  description = "Extra labels on every resource that takes labels."
  type        = map(string)
  default     = {}
}

variable "subnet_cidr" {
  description = "Primary range of the nodes' subnet."
  type        = string
  default     = "10.10.0.0/20"
}

variable "pods_cidr" {
  description = "Secondary range for pods (VPC-native cluster)."
  type        = string
  default     = "10.20.0.0/16"
}

variable "services_cidr" {
  description = "Secondary range for services."
  type        = string
  default     = "10.30.0.0/20"
}

variable "master_cidr" {
  description = "/28 for the GKE control plane's private endpoint."
  type        = string
  default     = "172.16.0.0/28"
}

variable "master_authorized_cidrs" {
  description = "CIDRs allowed to reach the Kubernetes API (operators' VPN, CI runners)."
  type        = list(string)

  validation {
    condition     = length(var.master_authorized_cidrs) > 0 && !contains(var.master_authorized_cidrs, "0.0.0.0/0")
    error_message = "master_authorized_cidrs: at least one CIDR, and never 0.0.0.0/0."
  }
}

variable "quic_client_cidrs" {
  description = "CIDRs of the HFT clients allowed to reach QUIC order entry over UDP (cross-connects, partner ranges)."
  type        = list(string)

  validation {
    condition     = length(var.quic_client_cidrs) > 0 && !contains(var.quic_client_cidrs, "0.0.0.0/0")
    error_message = "quic_client_cidrs: at least one CIDR, and never 0.0.0.0/0: order entry is for known clients."
  }
}

variable "quic_port" {
  description = "UDP port of QUIC order entry (the appliance's quic.listen)."
  type        = number
  default     = 4433
}

variable "rbac_group" {
  description = "Google Group for Kubernetes RBAC (must be named gke-security-groups@<your domain>)."
  type        = string
}

variable "hotpath_machine_type" {
  description = "Machine type of the hot-path pool: compute-optimized C3 or C4 (an -lssd type brings local SSDs for the journal)."
  type        = string
  default     = "c3-standard-44-lssd"

  validation {
    condition     = can(regex("^c[34]d?-(standard|highcpu|highmem)-[0-9]+(-lssd)?$", var.hotpath_machine_type))
    error_message = "hotpath_machine_type: a C3, C3D or C4 compute-optimized machine type."
  }
}

variable "hotpath_node_count" {
  description = "Hot-path nodes: one appliance pod per node (anti-affinity), so this is the appliance's replica count."
  type        = number
  default     = 2
}

variable "hotpath_local_ssd_count" {
  description = "Local NVMe SSDs per hot-path node, as raw block devices for the journal; must match what the -lssd machine type bundles."
  type        = number
  default     = 8
}

variable "hotpath_tier1_networking" {
  description = "Ask for Tier_1 egress bandwidth; applied only when the machine type allows it (30 vCPUs or more)."
  type        = bool
  default     = true
}

variable "hotpath_hugepages_2m" {
  description = "2 MiB hugepages reserved on each hot-path node (the appliance pod requests them)."
  type        = number
  default     = 1024
}

variable "hotpath_maintenance_start" {
  description = "Start of the weekly maintenance window (RFC 3339, UTC): node upgrades of the hot path are manual and happen only then."
  type        = string
  default     = "2026-01-03T02:00:00Z"
}

variable "hotpath_maintenance_end" {
  description = "End of the weekly maintenance window (RFC 3339, UTC)."
  type        = string
  default     = "2026-01-03T06:00:00Z"
}

variable "hotpath_maintenance_recurrence" {
  description = "RFC 5545 recurrence of the maintenance window: Saturday night, when crypto volume is lowest."
  type        = string
  default     = "FREQ=WEEKLY;BYDAY=SA"
}

variable "control_machine_type" {
  description = "Machine type of the control pool (identity, wallets, console, OpenBao)."
  type        = string
  default     = "n2-standard-4"
}

variable "control_min_nodes" {
  description = "Autoscaling lower bound of the control pool, per zone."
  type        = number
  default     = 1
}

variable "control_max_nodes" {
  description = "Autoscaling upper bound of the control pool, per zone."
  type        = number
  default     = 4
}

variable "control_spot_max_nodes" {
  description = "Autoscaling upper bound, per zone, of the Spot pool for stateless control-plane Deployments that tolerate it (the console); 0 creates no Spot pool. Identity, wallets and OpenBao stay on the on-demand control pool."
  type        = number
  default     = 3
}

variable "sql_tier" {
  description = "Cloud SQL machine tier of the replica database."
  type        = string
  default     = "db-custom-4-16384"
}

variable "sql_backup_start" {
  description = "Daily backup start time (HH:MM, UTC)."
  type        = string
  default     = "03:00"
}

variable "sql_log_retention_days" {
  description = "Days of binary logs kept for point-in-time recovery (1 to 7)."
  type        = number
  default     = 7

  validation {
    condition     = var.sql_log_retention_days >= 1 && var.sql_log_retention_days <= 7
    error_message = "sql_log_retention_days: 1 to 7."
  }
}
