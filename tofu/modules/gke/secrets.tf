# Secrets are declared here, their values never are: a secret version in tofu would sit in state in
# plain text. Write values out-of-band: gcloud secrets versions add NAME --data-file=-
resource "google_secret_manager_secret" "this" {
  for_each  = var.secret_ids
  project   = var.project_id
  secret_id = each.value

  replication {
    auto {}
  }

  depends_on = [google_project_service.cluster]
}

resource "google_secret_manager_secret_iam_member" "eso_read" {
  for_each  = google_secret_manager_secret.this
  project   = each.value.project
  secret_id = each.value.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.eso.member
}
