/* cpus: how many CPUs this process may use (affinity and cgroup quota). */
#include "cpus.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cpus_quota_parse(const char *cpu_max)
{
	char *end;
	long long quota, period;

	if (!cpu_max || strncmp(cpu_max, "max", 3) == 0)
		return 0;
	errno = 0;
	quota = strtoll(cpu_max, &end, 10);
	if (errno || end == cpu_max || *end != ' ' || quota <= 0)
		return 0;
	cpu_max = end + 1;
	period = strtoll(cpu_max, &end, 10);
	if (errno || end == cpu_max || (*end != '\n' && *end != '\0') ||
	    period <= 0)
		return 0;
	if (quota / period >= 4096)
		return 4096;
	return (int)(quota / period + (quota % period != 0));
}

/* The CPUs one cgroup's cpu.max allows, 0 without a quota or a file. */
static int quota_of(const char *cgroup)
{
	char path[4200], text[128];
	FILE *f;
	int cpus = 0;

	snprintf(path, sizeof(path), "/sys/fs/cgroup%s/cpu.max", cgroup);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fgets(text, sizeof(text), f))
		cpus = cpus_quota_parse(text);
	fclose(f);
	return cpus;
}

/*
 * The lowest cpu.max on the way from this process's cgroup (v2) up to the
 * root: a quota on a parent (a systemd slice) limits its children too.
 * 0 without one. A cgroup path not under /sys/fs/cgroup (another cgroup
 * namespace's) has no files there and counts as no quota.
 */
static int cgroup_quota(void)
{
	char line[4096];
	FILE *f = fopen("/proc/self/cgroup", "r");
	int lowest = 0;

	if (!f)
		return 0;
	/* v2 is the line "0::/the/path"; v1 controllers are not read. */
	while (fgets(line, sizeof(line), f)) {
		char *path = line + 3;

		if (strncmp(line, "0::", 3) != 0)
			continue;
		path[strcspn(path, "\n")] = '\0';
		for (;;) {
			char *slash = strrchr(path, '/');
			int cpus = quota_of(path);

			if (cpus > 0 && (lowest == 0 || cpus < lowest))
				lowest = cpus;
			if (!slash || slash == path)
				break;
			*slash = '\0';
		}
		break;
	}
	fclose(f);
	return lowest;
}

int cpus_available(void)
{
	cpu_set_t set;
	int cpus = 0;
	int quota;

	/* A fixed set fails past 1,024 CPUs: count the online ones then. */
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		cpus = CPU_COUNT(&set);
	else
		cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (cpus < 1)
		cpus = 1;
	quota = cgroup_quota();
	if (quota > 0 && quota < cpus)
		cpus = quota;
	return cpus;
}
