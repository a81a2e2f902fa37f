"""cutover_lab: emulated hypervisors for cutover's system tests, demo and lab.

Hosts are network namespaces joined by an underlay bridge that lives in a namespace of its own
(never the root namespace). Each host runs its own ovsdb-server and ovs-vswitchd (userspace
datapath) with a private run directory, and "VMs" are namespaces attached by veth. Everything is
tracked by PID and namespace name and torn down by Lab.cleanup(), which the callers run in a
finally block.
"""
