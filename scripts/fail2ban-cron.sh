#!/bin/sh
# The original cron job, with guarantees. The seed ran, every few minutes:
#
#   cat /var/log/fail2ban.log | grep NOTICE | grep Ban | jsonformat --schema '$date $hour _ _ _ \[$process\] _ $ip' \
#     --fields 'machine=server' | xargs ... curl -X POST https://log.example.com/log_fail2ban ... && rm /var/log/fail2ban.log
#
# which made one request per line and lost every line fail2ban wrote between
# the cat and the rm, and every line of a run that failed half-way. This is
# the same job in one command: the same greps (one made exact) and schema, batches instead of
# one request per line, retries, and --truncate removes from the log exactly
# the lines that were acknowledged (lines fail2ban appends meanwhile stay for
# the next run; if anything fails the log is left as it was, and the next run
# sends nothing twice). See docs/shipper.md.
#
# crontab (as root, who can read and truncate the log):
#   */5 * * * * /opt/couchlog/scripts/fail2ban-cron.sh
# and turn off logrotate for the log (comment out /etc/logrotate.d/fail2ban):
# this job keeps it small, and lines a rotation moves to fail2ban.log.1 are
# never read by --truncate (docs/shipper.md).
#
# Settings (environment):
#   COUCHLOG_URL       the ingress log database   (default http://127.0.0.1:8080/log_fail2ban)
#   FAIL2BAN_LOG       the log                    (default /var/log/fail2ban.log)
#   MACHINE            the "machine" field        (default: this host's name)
#   COUCHLOG_REJECTS   lines that could not be stored, with the reason
#                      (default /var/lib/couchlog/fail2ban-rejects.ndjson; always
#                      given to the shipper, so it never depends on cron's
#                      current directory)
#   COUCHLOG_SHIP      the shipper command        (default: node <this checkout>/dist/scripts/ship.js)
# Exit code: 0 when every line was stored or set aside; non-zero otherwise
# (cron mails the one-line reason).
set -eu

here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
url=${COUCHLOG_URL:-http://127.0.0.1:8080/log_fail2ban}
log=${FAIL2BAN_LOG:-/var/log/fail2ban.log}
machine=${MACHINE:-$(hostname)}
rejects=${COUCHLOG_REJECTS:-/var/lib/couchlog/fail2ban-rejects.ndjson}
ship=${COUCHLOG_SHIP:-node $here/../dist/scripts/ship.js}

[ -f "$log" ] || exit 0
mkdir -p "$(dirname -- "$rejects")"

# '\] Ban ' rather than the seed's 'Ban': fail2ban 0.10+ also writes
# "[sshd] Restore Ban <ip>" for every ban still running when it restarts, and
# with bantime.increment "[sshd] Increase Ban <ip> (...)"; neither is a new
# attack, and the seed's schema matches neither (they were refused into the
# reject file on every restart). Like Unban lines, they are dropped.
# shellcheck disable=SC2086 # $ship is a command with its arguments
exec $ship --url "$url" \
  --grep NOTICE --grep '\] Ban ' \
  --schema '$date $hour _ _ _ \[$process\] _ $ip' --fields "machine=$machine" \
  --truncate --reject-file "$rejects" \
  "$log"
