# Fed from environments/<env>/config.yaml by `deliver plan` (ci/delivery/substrate/inputs.py).
# Policy (deliver substrate-check) rejects a variable here that config does not feed.

variable "environment" {
  type = string
}

variable "project_id" {
  type = string
}

variable "cluster_name" {
  type = string
}

variable "location" {
  type = string
}

variable "region" {
  type = string
}

variable "kubernetes_version" {
  type = string
}

variable "registry_location" {
  type = string
}

variable "registry_project" {
  type = string
}

variable "registry_repository" {
  type = string
}

variable "gpu_type" {
  type = string
}

variable "gpu_machine_type" {
  type = string
}

variable "gpu_per_node" {
  type = number
}

variable "gpu_max_nodes" {
  type = number
}

variable "gpu_spot" {
  type = bool
}

variable "registry_cleanup" {
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
}

variable "gpu_image_streaming" {
  type = bool
}

variable "authorized_networks" {
  type = list(object({
    cidr_block   = string
    display_name = string
  }))
}

variable "labels" {
  type = map(string)
}
