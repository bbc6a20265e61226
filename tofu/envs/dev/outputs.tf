output "registry_path" {
  description = "Where modelcars are pushed (equals registry in config.yaml)."
  value       = module.gke.registry_path
}

output "cluster_name" {
  value = module.gke.cluster_name
}

output "cluster_location" {
  value = module.gke.cluster_location
}

output "cluster_project" {
  value = module.gke.cluster_project
}

output "cluster_endpoint" {
  value = module.gke.cluster_endpoint
}

output "workload_pool" {
  value = module.gke.workload_pool
}

output "gpu_node_pool" {
  value = module.gke.gpu_node_pool
}

output "node_service_account" {
  value = module.gke.node_service_account
}

output "eso_service_account" {
  value = module.gke.eso_service_account
}

output "secret_ids" {
  value = module.gke.secret_ids
}

output "get_credentials_command" {
  value = module.gke.get_credentials_command
}
