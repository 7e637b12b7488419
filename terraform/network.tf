# A VPC of our own with private nodes: nodes have no external address and reach the internet
# (image pulls outside Artifact Registry, chain RPC for the wallets) through Cloud NAT.

resource "google_compute_network" "vpc" {
  name                    = "peregrine-${var.environment}"
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"
}

resource "google_compute_subnetwork" "nodes" {
  name                     = "peregrine-${var.environment}-nodes"
  network                  = google_compute_network.vpc.id
  region                   = var.region
  ip_cidr_range            = var.subnet_cidr
  private_ip_google_access = true

  secondary_ip_range {
    range_name    = "pods"
    ip_cidr_range = var.pods_cidr
  }

  secondary_ip_range {
    range_name    = "services"
    ip_cidr_range = var.services_cidr
  }

  log_config {
    aggregation_interval = "INTERVAL_5_SEC"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_router" "nat" {
  name    = "peregrine-${var.environment}-nat"
  network = google_compute_network.vpc.id
  region  = var.region
}

resource "google_compute_router_nat" "nat" {
  name                               = "peregrine-${var.environment}-nat"
  router                             = google_compute_router.nat.name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

# QUIC order entry: UDP from the known client ranges to the hot-path nodes only.
resource "google_compute_firewall" "quic" {
  name          = "peregrine-${var.environment}-quic"
  network       = google_compute_network.vpc.id
  direction     = "INGRESS"
  priority      = 900
  source_ranges = var.quic_client_cidrs
  target_tags   = ["peregrine-hotpath"]

  allow {
    protocol = "udp"
    ports    = [tostring(var.quic_port)]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# Everything else from outside the VPC is refused, explicitly and logged (GCP's implied rule
# also denies, but does not log).
resource "google_compute_firewall" "deny_ingress" {
  name          = "peregrine-${var.environment}-deny-ingress"
  network       = google_compute_network.vpc.id
  direction     = "INGRESS"
  priority      = 65000
  source_ranges = ["0.0.0.0/0"]

  deny {
    protocol = "all"
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# Private services access: Cloud SQL gets an address inside this VPC, never a public one.
resource "google_compute_global_address" "private_services" {
  name          = "peregrine-${var.environment}-private-services"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = 20
  network       = google_compute_network.vpc.id
}

resource "google_service_networking_connection" "private_services" {
  network                 = google_compute_network.vpc.id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.private_services.name]
}
