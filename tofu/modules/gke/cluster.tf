locals {
  workload_pool = "${var.project_id}.svc.id.goog"
  gpu_pool_name = "gpu-${replace(var.gpu_type, "nvidia-", "")}"
}

# Zonal cluster: one free-tier cluster fee, Workload Identity, Dataplane V2 (NetworkPolicy).
resource "google_container_cluster" "this" {
  project             = var.project_id
  name                = var.cluster_name
  location            = var.location
  min_master_version  = var.kubernetes_version
  deletion_protection = var.deletion_protection

  remove_default_node_pool = true
  initial_node_count       = 1

  networking_mode = "VPC_NATIVE"
  ip_allocation_policy {}
  datapath_provider = "ADVANCED_DATAPATH"

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

    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }
}

# GPU pool: scale-to-zero, tainted for GPU workloads only, driver installed by GKE (no GPU Operator).
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
