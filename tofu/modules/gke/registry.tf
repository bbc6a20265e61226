# The modelcar repository: images pushed by `deliver modelcar publish`, pulled by GPU nodes.
resource "google_artifact_registry_repository" "modelcars" {
  project       = var.registry_project
  location      = var.registry_location
  repository_id = var.registry_repository
  format        = "DOCKER"
  description   = "KServe modelcar images (digest-pinned) for ${var.environment}"

  # Cleanup never deletes a release: KEEP policies win over DELETE ones in Artifact Registry, and every
  # image a release deploys or its ledger could roll back to carries a protected_tag_prefix tag.
  cleanup_policy_dry_run = var.registry_cleanup.dry_run
  cleanup_policies {
    id     = "keep-releases"
    action = "KEEP"
    condition {
      tag_state    = "TAGGED"
      tag_prefixes = [var.registry_cleanup.protected_tag_prefix]
    }
  }
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = var.registry_cleanup.keep_recent
    }
  }
  cleanup_policies {
    id     = "delete-untagged"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = var.registry_cleanup.delete_untagged_older_than
    }
  }
  dynamic "cleanup_policies" {
    for_each = var.registry_cleanup.delete_tagged == null ? [] : [var.registry_cleanup.delete_tagged]
    content {
      id     = "delete-tagged"
      action = "DELETE"
      condition {
        tag_state    = "TAGGED"
        tag_prefixes = cleanup_policies.value.tag_prefixes
        older_than   = cleanup_policies.value.older_than
      }
    }
  }

  depends_on = [google_project_service.cluster, google_project_service.registry]
}

resource "google_artifact_registry_repository_iam_member" "nodes_read" {
  project    = google_artifact_registry_repository.modelcars.project
  location   = google_artifact_registry_repository.modelcars.location
  repository = google_artifact_registry_repository.modelcars.name
  role       = "roles/artifactregistry.reader"
  member     = google_service_account.nodes.member
}
