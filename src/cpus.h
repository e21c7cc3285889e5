/*
 * cpus: how many CPUs this process may use, for the settings whose default
 * follows the machine (workers = 0).
 */
#ifndef TICKETD_CPUS_H
#define TICKETD_CPUS_H

/*
 * The CPUs this process may run on (its affinity), lowered to the lowest
 * cgroup v2 CPU quota on its cgroup or a parent (a container's, a systemd
 * unit's or slice's CPUQuota): a quota of 2 CPUs on a 64-CPU host is 2.
 * cgroup v1 quotas are not read. At least 1.
 */
int cpus_available(void);

/*
 * The CPUs a cgroup v2 cpu.max text allows ("200000 100000\n" is 2,
 * "150000 100000" rounds up to 2), 0 for no quota ("max 100000") or a
 * text that is not one.
 */
int cpus_quota_parse(const char *cpu_max);

#endif
