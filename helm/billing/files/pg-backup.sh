#!/bin/sh
# PostgreSQL backups of the Lobe billing database: the one script that docker compose's
# postgres-backup service and the billing chart's CronJob both run (docs/deploy.md).
#
#   pg-backup.sh backup           one pg_dump of $DATABASE_URL into $BACKUP_DIR, then keep the newest
#                                 $BACKUP_KEEP dumps
#   pg-backup.sh every SECONDS    backup now and then every SECONDS (compose has no cron)
#   pg-backup.sh restore FILE     restore FILE into $DATABASE_URL, which must be an empty database
#
# pg_dump and pg_restore must be at least the server's major version (they refuse an older one):
# compose and the chart run the postgres image of the server's major.
set -eu

: "${DATABASE_URL:?pg-backup: DATABASE_URL is required}"
BACKUP_DIR="${BACKUP_DIR:-/backup}"
BACKUP_KEEP="${BACKUP_KEEP:-14}"

backup() {
  mkdir -p "$BACKUP_DIR"
  final="$BACKUP_DIR/lobe-$(date -u +%Y%m%dT%H%M%SZ).dump"
  # Custom format: compressed, restorable table by table; written aside, then renamed, so a dump
  # in BACKUP_DIR is always whole.
  pg_dump --format=custom --no-owner --no-privileges --dbname="$DATABASE_URL" --file="$final.partial"
  mv "$final.partial" "$final"
  echo "pg-backup: wrote $final ($(wc -c <"$final") bytes)"
  # Names sort by time: everything past the newest BACKUP_KEEP goes.
  ls -1 "$BACKUP_DIR"/lobe-*.dump | sort -r | tail -n "+$((BACKUP_KEEP + 1))" | while read -r old; do
    rm -f "$old" && echo "pg-backup: removed $old"
  done
}

restore() {
  [ -f "$1" ] || { echo "pg-backup: no dump at $1" >&2; exit 2; }
  # One transaction: a restore that fails leaves the target as empty as it was.
  pg_restore --no-owner --no-privileges --exit-on-error --single-transaction --dbname="$DATABASE_URL" "$1"
  echo "pg-backup: restored $1"
}

case "${1:-}" in
  backup) backup ;;
  every)
    [ -n "${2:-}" ] || { echo "usage: pg-backup.sh every SECONDS" >&2; exit 2; }
    while :; do
      backup || echo "pg-backup: backup failed; next try in $2 s" >&2
      sleep "$2"
    done
    ;;
  restore)
    [ -n "${2:-}" ] || { echo "usage: pg-backup.sh restore FILE" >&2; exit 2; }
    restore "$2"
    ;;
  *)
    echo "usage: pg-backup.sh backup | every SECONDS | restore FILE" >&2
    exit 2
    ;;
esac
