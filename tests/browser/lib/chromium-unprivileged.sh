#!/bin/sh
# Chromium as its users run it: without the privilege to raise its own scheduling priority.
# Run as root (CI, this machine), Chromium gives its main, IO, compositor and media threads
# nice -8 and its audio threads SCHED_RR, so six browser tabs preempt the gateway and the
# compositor (nice 0) on a shared 2-core host: the SFU thread then waited up to 2.4 s for a
# CPU. A browser in a user's session cannot do that; dropping CAP_SYS_NICE keeps the load of
# the tabs and removes only the privilege.
exec setpriv --bounding-set=-sys_nice --inh-caps=-sys_nice "${ROOMCAST_CHROMIUM_REAL:-/usr/bin/chromium}" "$@"
