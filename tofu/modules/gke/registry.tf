# The modelcar repository: images pushed by `deliver modelcar publish`, pulled by GPU nodes.
resource "google_artifact_registry_repository" "modelcars" {
  project       = var.registry_project
  location      = var.registry_location
  repository_id = var.registry_repository
  format        = "DOCKER"
  description   = "KServe modelcar images (digest-pinned) for ${var.environment}"
  depends_on    = [google_project_service.cluster, google_project_service.registry]
}

resource "google_artifact_registry_repository_iam_member" "nodes_read" {
  project    = google_artifact_registry_repository.modelcars.project
  location   = google_artifact_registry_repository.modelcars.location
  repository = google_artifact_registry_repository.modelcars.name
  role       = "roles/artifactregistry.reader"
  member     = google_service_account.nodes.member
}
