locals {
  workload_pool = "${var.project_id}.svc.id.goog"
  gpu_pool_name = "gpu-${replace(var.gpu_type, "nvidia-", "")}"
}

# Zonal cluster: one free-tier cluster fee, Workload Identity, Dataplane V2 (NetworkPolicy).
# Private by config: nodes have internal addresses only, and the control plane's public endpoint
# answers only the networks in cluster.authorizedNetworks (config.yaml); no client certificates,
# no legacy ABAC, Shielded Nodes with Secure Boot on every pool.
resource "google_container_cluster" "this" {
  project             = var.project_id
  name                = var.cluster_name
  location            = var.location
  min_master_version  = var.kubernetes_version
  deletion_protection = var.deletion_protection
  resource_labels     = merge(var.labels, { "managed-by" = "opentofu" })

  remove_default_node_pool = true
  initial_node_count       = 1

  network         = google_compute_network.this.id
  subnetwork      = google_compute_subnetwork.nodes.id
  networking_mode = "VPC_NATIVE"
  ip_allocation_policy {
    cluster_secondary_range_name  = "pods"
    services_secondary_range_name = "services"
  }
  datapath_provider = "ADVANCED_DATAPATH"
  # Dataplane V2 enforces NetworkPolicy itself; the Calico add-on stays off (GKE refuses both).
  network_policy {
    enabled = false
  }
  # Pod-to-pod traffic on one node goes through the VPC too (flow logs, firewall rules).
  enable_intranode_visibility = true

  # Private nodes; the control plane keeps its public IP endpoint (kubectl, CI), closed to all but
  # the authorized networks. No master_ipv4_cidr_block: without it GKE makes a Private Service
  # Connect cluster (a /28 here would create a legacy VPC-peering one).
  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = false
  }

  master_authorized_networks_config {
    gcp_public_cidrs_access_enabled = false # not every Compute Engine IP in the world
    dynamic "cidr_blocks" {
      for_each = var.authorized_networks
      content {
        cidr_block   = cidr_blocks.value.cidr_block
        display_name = cidr_blocks.value.display_name
      }
    }
  }

  # The DNS endpoint is not subject to authorized networks: it takes no user traffic (GKE's own
  # services may still use it).
  control_plane_endpoints_config {
    dns_endpoint_config {
      allow_external_traffic = false
    }
  }

  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }
  enable_legacy_abac    = false
  enable_shielded_nodes = true

  # Admission evaluates the project's Binary Authorization policy (GCP's default policy allows
  # every image; write one to require attestations).
  binary_authorization {
    evaluation_mode = "PROJECT_SINGLETON_POLICY_ENFORCE"
  }

  release_channel {
    channel = var.release_channel
  }

  workload_identity_config {
    workload_pool = local.workload_pool
  }

  # GKE's managed DCGM exporter (GPU metrics, scraped by the platform's PodMonitor) needs the DCGM
  # monitoring package, which in turn needs managed Prometheus.
  monitoring_config {
    enable_components = ["SYSTEM_COMPONENTS", "DCGM"]
    managed_prometheus {
      enabled = true
    }
  }

  depends_on = [google_project_service.cluster]
}

resource "google_container_node_pool" "platform" {
  project  = var.project_id
  name     = "platform"
  location = var.location
  cluster  = google_container_cluster.this.name

  autoscaling {
    min_node_count = var.platform_min_nodes
    max_node_count = var.platform_max_nodes
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  node_config {
    machine_type    = var.platform_machine_type
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    labels          = { "llm-platform/pool" = "platform" }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }
}

# GPU pool: scale-to-zero, tainted for GPU workloads only, driver installed by GKE (no GPU Operator).
# Secure Boot holds with GPUs: the driver GKE installs is signed.
resource "google_container_node_pool" "gpu" {
  project            = var.project_id
  name               = local.gpu_pool_name
  location           = var.location
  cluster            = google_container_cluster.this.name
  initial_node_count = 0

  autoscaling {
    min_node_count = 0
    max_node_count = var.gpu_max_nodes
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  node_config {
    machine_type    = var.gpu_machine_type
    spot            = var.gpu_spot
    disk_size_gb    = var.gpu_disk_size_gb
    image_type      = "COS_CONTAINERD"
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    labels          = { "llm-platform/pool" = "gpu" }

    # Image streaming (GKE's container file system): a pod starts while its image is still being
    # fetched, so the vLLM image (several GB) does not delay a cold GPU node. Only for images in
    # Artifact Registry: promotion copies the env's images there, digest for digest.
    gcfs_config {
      enabled = var.gpu_image_streaming
    }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }

    guest_accelerator {
      type  = var.gpu_type
      count = var.gpu_per_node
      gpu_driver_installation_config {
        gpu_driver_version = "DEFAULT"
      }
    }

    taint {
      key    = "nvidia.com/gpu"
      value  = "present"
      effect = "NO_SCHEDULE"
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }
}
