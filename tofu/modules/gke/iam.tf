# Least privilege: nodes get the GKE default-node role and read access to the modelcar repository
# only; the External Secrets controller (through Workload Identity) reads only the declared secrets.

resource "google_service_account" "nodes" {
  project      = var.project_id
  account_id   = "${var.environment}-gke-nodes"
  display_name = "GKE nodes of ${var.cluster_name}"
  depends_on   = [google_project_service.cluster]
}

resource "google_project_iam_member" "nodes" {
  project = var.project_id
  role    = "roles/container.defaultNodeServiceAccount"
  member  = google_service_account.nodes.member
}

resource "google_service_account" "eso" {
  project      = var.project_id
  account_id   = "${var.environment}-eso-sa"
  display_name = "External Secrets of ${var.cluster_name}"
  depends_on   = [google_project_service.cluster]
}

resource "google_service_account_iam_member" "eso_workload_identity" {
  service_account_id = google_service_account.eso.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${local.workload_pool}[${var.eso_kubernetes_service_account}]"
  depends_on         = [google_container_cluster.this]
}
