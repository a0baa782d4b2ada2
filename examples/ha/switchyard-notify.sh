#!/bin/sh
# keepalived's notify hook: one line per VRRP state change, in a log file and in syslog.
# keepalived runs: switchyard-notify.sh LOGFILE TYPE NAME STATE PRIORITY
# (LOGFILE comes from the notify line of the keepalived config, the other four from keepalived:
#  e.g. INSTANCE VI_SWITCHYARD MASTER 150).
log=$1
line="$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ) $(hostname) $2 $3 is now $4 (priority $5)"
echo "$line" >>"$log"
logger -t switchyard-ha "$line" 2>/dev/null || true
