/* cpus: how many CPUs this process may use (affinity and cgroup quota). */
#include "cpus.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cpus_quota_parse(const char *cpu_max)
{
	char *end;
	long long quota, period;

	if (!cpu_max || strncmp(cpu_max, "max", 3) == 0)
		return 0;
	quota = strtoll(cpu_max, &end, 10);
	if (end == cpu_max || *end != ' ' || quota <= 0)
		return 0;
	cpu_max = end + 1;
	period = strtoll(cpu_max, &end, 10);
	if (end == cpu_max || (*end != '\n' && *end != '\0') || period <= 0)
		return 0;
	if (quota / period >= 4096)
		return 4096;
	return (int)((quota + period - 1) / period);
}

/* The cpu.max of this process's own cgroup (v2), 0 without a quota. */
static int cgroup_quota(void)
{
	char line[4096], path[4200], text[128];
	FILE *f = fopen("/proc/self/cgroup", "r");
	int cpus = 0;

	if (!f)
		return 0;
	/* v2 is the line "0::/the/path"; v1 controllers are not read. */
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3) != 0)
			continue;
		line[strcspn(line, "\n")] = '\0';
		snprintf(path, sizeof(path), "/sys/fs/cgroup%s/cpu.max",
			 strcmp(line + 3, "/") == 0 ? "" : line + 3);
		FILE *max = fopen(path, "r");

		if (max) {
			if (fgets(text, sizeof(text), max))
				cpus = cpus_quota_parse(text);
			fclose(max);
		}
		break;
	}
	fclose(f);
	return cpus;
}

int cpus_available(void)
{
	cpu_set_t set;
	int cpus = 0;
	int quota;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		cpus = CPU_COUNT(&set);
	if (cpus < 1)
		cpus = 1;
	quota = cgroup_quota();
	if (quota > 0 && quota < cpus)
		cpus = quota;
	return cpus;
}
