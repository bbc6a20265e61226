# Inputs fed from environments/<env>/config.yaml by the env roots (see ci/delivery/substrate/inputs.py).

variable "environment" {
  description = "Environment name (environments/<env>); prefixes service account ids."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,19}$", var.environment))
    error_message = "environment must be a lower-case name of at most 20 characters."
  }
}

variable "project_id" {
  description = "GCP project of the cluster (cluster.projectID)."
  type        = string
}

variable "cluster_name" {
  description = "GKE cluster name (cluster.name)."
  type        = string
}

variable "location" {
  description = "Zone of the zonal cluster (cluster.location)."
  type        = string
}

variable "region" {
  description = "Region of the cluster's zone: its subnet and Cloud NAT (cluster.location, region part)."
  type        = string
}

variable "authorized_networks" {
  description = "IPv4 networks allowed to reach the control plane's public endpoint (cluster.authorizedNetworks)."
  type = list(object({
    cidr_block   = string
    display_name = string
  }))
  validation {
    condition = alltrue([
      for n in var.authorized_networks :
      can(cidrnetmask(n.cidr_block)) ? cidrsubnet(n.cidr_block, 0, 0) == n.cidr_block : false
    ])
    error_message = "authorized_networks: every cidr_block must be an IPv4 network without host bits, e.g. 203.0.113.0/24."
  }
}

variable "labels" {
  description = "Labels of the cluster and the resources GKE makes for it (cluster.labels, plus env and part-of)."
  type        = map(string)
  validation {
    condition = alltrue([
      for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))
    ])
    error_message = "labels: keys are [a-z][a-z0-9_-]{0,62}, values [a-z0-9_-]{0,63} (GCP label syntax)."
  }
}

variable "kubernetes_version" {
  description = "GKE minor version, e.g. \"1.34\" (cluster.kubernetesVersion)."
  type        = string
}

variable "registry_location" {
  description = "Artifact Registry location (from registry: <location>-docker.pkg.dev/...)."
  type        = string
}

variable "registry_project" {
  description = "Project of the Artifact Registry repository (from registry)."
  type        = string
}

variable "registry_repository" {
  description = "Artifact Registry repository id for modelcars (from registry)."
  type        = string
}

variable "gpu_type" {
  description = "GKE accelerator type of the GPU pool (gpu.type)."
  type        = string
}

variable "gpu_machine_type" {
  description = "Machine type of the GPU pool (gpu.machineType)."
  type        = string
}

variable "gpu_per_node" {
  description = "GPUs per GPU node (gpu.perNode)."
  type        = number
}

variable "gpu_max_nodes" {
  description = "Maximum GPU nodes; the minimum is always 0 (gpu.maxNodes)."
  type        = number
  validation {
    condition     = var.gpu_max_nodes >= 1
    error_message = "gpu_max_nodes must be at least 1."
  }
}

variable "gpu_spot" {
  description = "Run GPU nodes on Spot VMs (gpu.spot)."
  type        = bool
}

variable "registry_cleanup" {
  description = "Cleanup policies of the modelcar repository (registryCleanup); versions tagged protected_tag_prefix* are always kept."
  type = object({
    dry_run                    = bool
    keep_recent                = number
    delete_untagged_older_than = string
    delete_tagged = object({
      older_than   = string
      tag_prefixes = list(string)
    })
    protected_tag_prefix = string
  })
  validation {
    condition     = var.registry_cleanup.keep_recent >= 1
    error_message = "registry_cleanup.keep_recent must be at least 1."
  }
  validation {
    condition     = can(regex("^[0-9]+s$", var.registry_cleanup.delete_untagged_older_than)) ? tonumber(trimsuffix(var.registry_cleanup.delete_untagged_older_than, "s")) >= 86400 : false
    error_message = "registry_cleanup.delete_untagged_older_than must be seconds (\"2592000s\") of at least a day: an image is untagged between its push and its tag."
  }
  validation {
    condition     = length(var.registry_cleanup.protected_tag_prefix) > 0
    error_message = "registry_cleanup.protected_tag_prefix must not be empty: it marks what a release deploys or could roll back to."
  }
  validation {
    condition = var.registry_cleanup.delete_tagged == null ? true : length(var.registry_cleanup.delete_tagged.tag_prefixes) > 0 && alltrue([
      for p in var.registry_cleanup.delete_tagged.tag_prefixes :
      !startswith(p, var.registry_cleanup.protected_tag_prefix) && !startswith(var.registry_cleanup.protected_tag_prefix, p)
    ])
    error_message = "registry_cleanup.delete_tagged.tag_prefixes must be non-empty and none may match a protected tag (protected_tag_prefix)."
  }
}

variable "gpu_image_streaming" {
  description = "GKE image streaming on the GPU pool: pods start before their image is fully pulled (gpu.imageStreaming)."
  type        = bool
}

# Defaults of the module: the same for every environment, so not in config.yaml.

variable "platform_machine_type" {
  description = "Machine type of the always-on platform pool."
  type        = string
  default     = "e2-standard-4"
}

variable "platform_min_nodes" {
  description = "Minimum nodes of the platform pool."
  type        = number
  default     = 1
}

variable "platform_max_nodes" {
  description = "Maximum nodes of the platform pool."
  type        = number
  default     = 3
}

variable "gpu_disk_size_gb" {
  description = "Boot disk of GPU nodes (modelcar images are pulled onto it)."
  type        = number
  default     = 100
}

variable "node_cidr" {
  description = "Primary range of the nodes' subnet (the cluster's own VPC)."
  type        = string
  default     = "10.0.0.0/20"
}

variable "pod_cidr" {
  description = "Secondary range of the subnet for pods."
  type        = string
  default     = "10.4.0.0/14"
}

variable "service_cidr" {
  description = "Secondary range of the subnet for services."
  type        = string
  default     = "10.8.0.0/20"
}

variable "release_channel" {
  description = "GKE release channel."
  type        = string
  default     = "REGULAR"
}

variable "deletion_protection" {
  description = "Refuse to destroy the cluster (turn off deliberately before a teardown)."
  type        = bool
  default     = true
}

variable "secret_ids" {
  description = "Secret Manager secrets to declare (never their values: write versions with gcloud)."
  type        = set(string)
  default     = ["vllm-api-key", "litellm-master-key", "litellm-salt-key"]
}

variable "eso_kubernetes_service_account" {
  description = "namespace/name of the External Secrets controller's Kubernetes service account."
  type        = string
  default     = "external-secrets/external-secrets"
}
