# Root of one environment. Every value comes from environments/<env>/config.yaml: `deliver plan`
# passes the variables (-var-file) and the GCS backend's bucket and prefix (-backend-config).
terraform {
  required_version = ">= 1.8.0"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "7.37.0"
    }
  }
  backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = var.region
}

module "gke" {
  source = "../../modules/gke"

  environment         = var.environment
  project_id          = var.project_id
  cluster_name        = var.cluster_name
  location            = var.location
  region              = var.region
  kubernetes_version  = var.kubernetes_version
  registry_location   = var.registry_location
  registry_project    = var.registry_project
  registry_repository = var.registry_repository
  registry_cleanup    = var.registry_cleanup
  gpu_type            = var.gpu_type
  gpu_machine_type    = var.gpu_machine_type
  gpu_per_node        = var.gpu_per_node
  gpu_max_nodes       = var.gpu_max_nodes
  gpu_spot            = var.gpu_spot
  gpu_image_streaming = var.gpu_image_streaming
  authorized_networks = var.authorized_networks
  labels              = var.labels
}
