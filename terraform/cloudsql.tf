# Cloud SQL for MySQL 8: the replica database (history, reporting, ledger). Regional HA,
# point-in-time recovery from binary logs, a private address only, IAM database login.

resource "google_sql_database_instance" "replica" {
  name                = "peregrine-${var.environment}"
  database_version    = "MYSQL_8_0"
  region              = var.region
  deletion_protection = true

  settings {
    tier                        = var.sql_tier
    availability_type           = "REGIONAL"
    deletion_protection_enabled = true
    user_labels                 = local.labels

    backup_configuration {
      enabled                        = true
      binary_log_enabled             = true
      start_time                     = var.sql_backup_start
      transaction_log_retention_days = var.sql_log_retention_days

      backup_retention_settings {
        retained_backups = 30
      }
    }

    ip_configuration {
      ipv4_enabled                                  = false
      private_network                               = google_compute_network.vpc.id
      ssl_mode                                      = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
      enable_private_path_for_google_cloud_services = true
    }

    database_flags {
      name  = "cloudsql_iam_authentication"
      value = "on"
    }

    database_flags {
      name  = "local_infile"
      value = "off"
    }

    database_flags {
      name  = "skip_show_database"
      value = "on"
    }

    insights_config {
      query_insights_enabled = true
    }

    maintenance_window {
      day  = 6
      hour = 3
    }
  }

  depends_on = [google_service_networking_connection.private_services]
}

resource "google_sql_database" "peregrine" {
  name     = "peregrine"
  instance = google_sql_database_instance.replica.name
}

# The appliance's IAM login (its Google service account, without the domain suffix).
resource "google_sql_user" "appliance" {
  name     = trimsuffix(google_service_account.appliance.email, ".gserviceaccount.com")
  instance = google_sql_database_instance.replica.name
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"
}
