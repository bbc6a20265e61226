# Services the substrate needs. A blank project first needs serviceusage and
# cloudresourcemanager enabled by hand (gcloud services enable ...).
locals {
  cluster_services = toset([
    "container.googleapis.com",
    "compute.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "secretmanager.googleapis.com",
    "artifactregistry.googleapis.com",
    "binaryauthorization.googleapis.com",
  ])
  # Image streaming needs the Container File System API.
  streaming_services = var.gpu_image_streaming ? toset(["containerfilesystem.googleapis.com"]) : toset([])
}

resource "google_project_service" "cluster" {
  for_each           = setunion(local.cluster_services, local.streaming_services)
  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

# The registry may live in another project (a shared registry): enable its API there too.
resource "google_project_service" "registry" {
  count              = var.registry_project == var.project_id ? 0 : 1
  project            = var.registry_project
  service            = "artifactregistry.googleapis.com"
  disable_on_destroy = false
}
