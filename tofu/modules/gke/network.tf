# The cluster's own VPC: nodes have internal addresses only (private nodes), so nothing on the
# internet can reach them. Ingress is denied (and logged) below everything else; GKE adds the
# control-plane and intra-cluster rules it needs at higher priority. Egress:
# - Google APIs (Artifact Registry modelcars, Secret Manager, GKE) through Private Google Access;
# - public registries the charts pull from (quay.io, ghcr.io, docker.io, registry.k8s.io) through
#   Cloud NAT, which gives the private nodes outbound-only internet access.

resource "google_compute_network" "this" {
  project                 = var.project_id
  name                    = var.cluster_name
  auto_create_subnetworks = false
  depends_on              = [google_project_service.cluster]
}

resource "google_compute_subnetwork" "nodes" {
  project                  = var.project_id
  name                     = "${var.cluster_name}-nodes"
  region                   = var.region
  network                  = google_compute_network.this.id
  ip_cidr_range            = var.node_cidr
  private_ip_google_access = true

  secondary_ip_range {
    range_name    = "pods"
    ip_cidr_range = var.pod_cidr
  }

  secondary_ip_range {
    range_name    = "services"
    ip_cidr_range = var.service_cidr
  }

  # VPC flow logs (with intranode visibility on the cluster, pod-to-pod traffic on one node too).
  log_config {
    aggregation_interval = "INTERVAL_5_SEC"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# Explicit, logged deny of all other ingress (the VPC's implied rule denies too, but logs nothing).
resource "google_compute_firewall" "deny_ingress" {
  project   = var.project_id
  name      = "${var.cluster_name}-deny-ingress"
  network   = google_compute_network.this.id
  direction = "INGRESS"
  priority  = 65534

  deny {
    protocol = "all"
  }
  source_ranges = ["0.0.0.0/0"]

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_router" "nat" {
  project = var.project_id
  name    = "${var.cluster_name}-nat"
  region  = var.region
  network = google_compute_network.this.id
}

resource "google_compute_router_nat" "nat" {
  project                            = var.project_id
  name                               = "${var.cluster_name}-nat"
  region                             = var.region
  router                             = google_compute_router.nat.name
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "LIST_OF_SUBNETWORKS"

  subnetwork {
    name                    = google_compute_subnetwork.nodes.id
    source_ip_ranges_to_nat = ["ALL_IP_RANGES"]
  }

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}
