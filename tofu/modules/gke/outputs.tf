# What the rest of the pipeline reads (modelcar publish, layers, kubectl).

output "registry_path" {
  description = "Where modelcars are pushed: equals registry in the env config."
  value       = "${google_artifact_registry_repository.modelcars.location}-docker.pkg.dev/${google_artifact_registry_repository.modelcars.project}/${google_artifact_registry_repository.modelcars.repository_id}"
}

output "cluster_name" {
  value = google_container_cluster.this.name
}

output "cluster_location" {
  value = google_container_cluster.this.location
}

output "cluster_project" {
  value = google_container_cluster.this.project
}

output "cluster_endpoint" {
  value = google_container_cluster.this.endpoint
}

output "workload_pool" {
  value = local.workload_pool
}

output "gpu_node_pool" {
  value = google_container_node_pool.gpu.name
}

output "node_service_account" {
  value = google_service_account.nodes.email
}

output "eso_service_account" {
  description = "Annotate the ESO controller's KSA with iam.gke.io/gcp-service-account = this."
  value       = google_service_account.eso.email
}

output "secret_ids" {
  value = sort([for s in google_secret_manager_secret.this : s.secret_id])
}

output "get_credentials_command" {
  value = "gcloud container clusters get-credentials ${google_container_cluster.this.name} --zone ${google_container_cluster.this.location} --project ${google_container_cluster.this.project}"
}
