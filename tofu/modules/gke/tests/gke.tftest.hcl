# The module against the real google provider's schema with a mocked API (no call leaves the machine):
# `tofu test` plans it with the values an environment's config gives (`-var-file`, written from
# environments/<env>/config.yaml) and asserts the planned values the platform relies on.
# tests/test_tofu_real.py runs it for every environment, with tofu and (where installed) terraform.

mock_provider "google" {
  # The provider still validates config under the mock: service account emails, members and names
  # must look real where other resources use them (random mock strings are refused).
  mock_resource "google_service_account" {
    defaults = {
      email     = "mock-sa@mock-project.iam.gserviceaccount.com"
      member    = "serviceAccount:mock-sa@mock-project.iam.gserviceaccount.com"
      name      = "projects/mock-project/serviceAccounts/mock-sa@mock-project.iam.gserviceaccount.com"
      unique_id = "100000000000000000000"
    }
  }
}

# One plan, every planned value the platform relies on (each run is a plan of its own: ~1 s).
run "planned_values" {
  command = plan

  # GPU pool: scale-to-zero up to gpu.maxNodes, tainted, driver by GKE, Spot and streaming by config
  assert {
    condition     = google_container_node_pool.gpu.autoscaling[0].min_node_count == 0
    error_message = "the GPU pool must scale to zero (autoscaling min_node_count = 0)"
  }
  assert {
    condition     = google_container_node_pool.gpu.autoscaling[0].max_node_count == var.gpu_max_nodes
    error_message = "the GPU pool's maximum must be gpu.maxNodes"
  }
  assert {
    condition     = google_container_node_pool.gpu.initial_node_count == 0
    error_message = "the GPU pool must start with no nodes"
  }
  assert {
    condition = [for t in google_container_node_pool.gpu.node_config[0].taint : t if t.key == "nvidia.com/gpu"] == [
      { key = "nvidia.com/gpu", value = "present", effect = "NO_SCHEDULE" }
    ]
    error_message = "the GPU pool must carry exactly the taint nvidia.com/gpu=present with effect NO_SCHEDULE"
  }
  assert {
    condition = alltrue([
      for a in google_container_node_pool.gpu.node_config[0].guest_accelerator :
      a.type == var.gpu_type && a.count == var.gpu_per_node &&
      contains(["DEFAULT", "LATEST"], one(a.gpu_driver_installation_config).gpu_driver_version)
    ])
    error_message = "the GPU pool's accelerators must be gpu.type x gpu.perNode, the driver installed by GKE (DEFAULT or LATEST)"
  }
  assert {
    condition     = google_container_node_pool.gpu.node_config[0].spot == var.gpu_spot
    error_message = "the GPU pool must use Spot VMs exactly when gpu.spot is true"
  }
  assert {
    condition     = google_container_node_pool.gpu.node_config[0].gcfs_config[0].enabled == var.gpu_image_streaming
    error_message = "image streaming on the GPU pool must follow gpu.imageStreaming"
  }
  assert {
    condition     = contains(keys(google_project_service.cluster), "containerfilesystem.googleapis.com") == var.gpu_image_streaming
    error_message = "the Container File System API must be enabled exactly when image streaming is on"
  }

  # Cluster: Workload Identity, Dataplane V2, DCGM metrics with managed Prometheus
  assert {
    condition     = google_container_cluster.this.workload_identity_config[0].workload_pool == "${var.project_id}.svc.id.goog"
    error_message = "the cluster must have the project's Workload Identity pool"
  }
  assert {
    condition     = google_container_cluster.this.datapath_provider == "ADVANCED_DATAPATH"
    error_message = "the cluster must run Dataplane V2 (ADVANCED_DATAPATH)"
  }
  assert {
    condition = (
      contains(google_container_cluster.this.monitoring_config[0].enable_components, "DCGM") &&
      google_container_cluster.this.monitoring_config[0].managed_prometheus[0].enabled
    )
    error_message = "the cluster must enable GKE's DCGM metrics and managed Prometheus"
  }

  # Private by config (docs/security.md)
  assert {
    condition     = google_container_cluster.this.private_cluster_config[0].enable_private_nodes
    error_message = "nodes must be private"
  }
  assert {
    condition = toset([
      for c in google_container_cluster.this.master_authorized_networks_config[0].cidr_blocks :
      { cidr_block = c.cidr_block, display_name = c.display_name }
    ]) == toset(var.authorized_networks)
    error_message = "the control plane must answer exactly the networks of cluster.authorizedNetworks"
  }
  assert {
    condition     = google_container_cluster.this.master_authorized_networks_config[0].gcp_public_cidrs_access_enabled == false
    error_message = "Compute Engine's public IPs must not reach the control plane"
  }
  assert {
    condition     = google_container_cluster.this.master_auth[0].client_certificate_config[0].issue_client_certificate == false
    error_message = "client certificates must be off"
  }
  assert {
    condition = alltrue([
      for pool in [google_container_node_pool.platform, google_container_node_pool.gpu] :
      pool.node_config[0].shielded_instance_config[0].enable_secure_boot &&
      pool.node_config[0].shielded_instance_config[0].enable_integrity_monitoring
    ])
    error_message = "both node pools must have Secure Boot and integrity monitoring"
  }

  # Secrets: declared only, each readable by ESO alone, ESO bound to its KSA by Workload Identity
  assert {
    condition     = toset(keys(google_secret_manager_secret.this)) == var.secret_ids
    error_message = "exactly the declared secrets must exist"
  }
  assert {
    condition = alltrue([
      for id in var.secret_ids : length([
        for b in google_secret_manager_secret_iam_member.eso_read : b
        if b.secret_id == id && b.role == "roles/secretmanager.secretAccessor"
      ]) == 1
    ]) && length(google_secret_manager_secret_iam_member.eso_read) == length(var.secret_ids)
    error_message = "each declared secret must have exactly one secretAccessor binding"
  }
  assert {
    condition     = google_service_account_iam_member.eso_workload_identity.member == "serviceAccount:${var.project_id}.svc.id.goog[${var.eso_kubernetes_service_account}]"
    error_message = "the ESO service account must be bound to the ESO controller's KSA through Workload Identity"
  }
  assert {
    condition     = google_service_account_iam_member.eso_workload_identity.role == "roles/iam.workloadIdentityUser"
    error_message = "the ESO binding must grant roles/iam.workloadIdentityUser"
  }

  # Registry cleanup: releases (protected tags) and the most recent versions kept, old untagged deleted.
  # (terraform evaluates both sides of && and leaves unset blocks null: every read goes through try.)
  assert {
    condition     = google_artifact_registry_repository.modelcars.cleanup_policy_dry_run == var.registry_cleanup.dry_run
    error_message = "cleanup dry-run must follow registryCleanup.dryRun"
  }
  assert {
    condition = [
      for p in google_artifact_registry_repository.modelcars.cleanup_policies : p.action
      if p.id == "keep-releases" && try(one(p.condition).tag_state, "") == "TAGGED" &&
      toset(flatten([for x in [try(one(p.condition).tag_prefixes, null)] : x if x != null])) == toset([var.registry_cleanup.protected_tag_prefix])
    ] == ["KEEP"]
    error_message = "the repository must KEEP every version tagged with the protected prefix"
  }
  assert {
    condition = [
      for p in google_artifact_registry_repository.modelcars.cleanup_policies : try(one(p.most_recent_versions).keep_count, -1)
      if p.id == "keep-recent" && p.action == "KEEP"
    ] == [var.registry_cleanup.keep_recent]
    error_message = "the repository must KEEP the registryCleanup.keepRecent most recent versions"
  }
  assert {
    condition = alltrue([
      for p in google_artifact_registry_repository.modelcars.cleanup_policies :
      try(one(p.condition).tag_state, "") == "UNTAGGED" || (
        try(one(p.condition).tag_state, "") == "TAGGED" && length(flatten([for x in [try(one(p.condition).tag_prefixes, null)] : x if x != null])) > 0 &&
        alltrue([for t in flatten([for x in [try(one(p.condition).tag_prefixes, null)] : x if x != null]) : !startswith(t, var.registry_cleanup.protected_tag_prefix)])
      )
      if p.action == "DELETE"
    ])
    error_message = "a DELETE policy may match only untagged versions or tags outside the protected prefix"
  }
  assert {
    condition = [
      for p in google_artifact_registry_repository.modelcars.cleanup_policies : try(one(p.condition).older_than, "")
      if p.id == "delete-untagged" && p.action == "DELETE" && try(one(p.condition).tag_state, "") == "UNTAGGED"
    ] == [var.registry_cleanup.delete_untagged_older_than]
    error_message = "untagged versions older than registryCleanup.deleteUntaggedOlderThan must be deleted"
  }
}

run "cleanup_of_tagged_builds" {
  command = plan
  variables {
    registry_cleanup = {
      dry_run                    = false
      keep_recent                = 3
      delete_untagged_older_than = "86400s"
      delete_tagged              = { older_than = "7776000s", tag_prefixes = ["build-"] }
      protected_tag_prefix       = "release-"
    }
  }

  assert {
    condition = [
      for p in google_artifact_registry_repository.modelcars.cleanup_policies : join(",", sort(flatten([for x in [try(one(p.condition).tag_prefixes, null)] : x if x != null])))
      if p.id == "delete-tagged" && p.action == "DELETE"
    ] == ["build-"]
    error_message = "registryCleanup.deleteTagged must add a DELETE policy for exactly its tag prefixes"
  }
  assert {
    condition     = length(google_artifact_registry_repository.modelcars.cleanup_policies) == 4
    error_message = "keep-releases, keep-recent, delete-untagged and delete-tagged: four policies"
  }
}

# A cleanup that could delete a protected tag, or untagged versions younger than a day, is refused.
run "refuses_a_cleanup_of_protected_tags" {
  command = plan
  variables {
    registry_cleanup = {
      dry_run                    = false
      keep_recent                = 0
      delete_untagged_older_than = "60s"
      delete_tagged              = { older_than = "86400s", tag_prefixes = ["rel"] }
      protected_tag_prefix       = "release-"
    }
  }
  expect_failures = [var.registry_cleanup]
}

run "image_streaming_off" {
  command = plan
  variables {
    gpu_image_streaming = false
  }

  assert {
    condition     = google_container_node_pool.gpu.node_config[0].gcfs_config[0].enabled == false
    error_message = "gpu.imageStreaming false must turn image streaming off"
  }
  assert {
    condition     = !contains(keys(google_project_service.cluster), "containerfilesystem.googleapis.com")
    error_message = "without image streaming the Container File System API is not enabled"
  }
}

# The module's own variable validations refuse what config validation refuses first.
run "refuses_bad_inputs" {
  command = plan
  variables {
    environment         = "Dev_1"
    authorized_networks = [{ cidr_block = "203.0.113.7/24", display_name = "office" }]
    labels              = { "Team" = "ml-platform" }
    gpu_max_nodes       = 0
  }
  # each of these validations must fail, not just one of them
  expect_failures = [var.environment, var.authorized_networks, var.labels, var.gpu_max_nodes]
}

run "refuses_an_ipv6_network" {
  command = plan
  variables {
    authorized_networks = [{ cidr_block = "::/0", display_name = "everyone" }]
  }
  expect_failures = [var.authorized_networks]
}
