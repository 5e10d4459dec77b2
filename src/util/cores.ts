import {readFileSync} from 'node:fs';
import {availableParallelism} from 'node:os';

/** A worker is worth its thread from about this many calls in flight (measured: see bench/README.md). */
export const CALLS_PER_WORKER = 100;

/**
 * The cores a container's CPU quota allows (cgroup v2 `cpu.max`, else v1 `cpu.cfs_quota_us` over
 * `cpu.cfs_period_us`), rounded up; undefined with no quota. A Kubernetes `limits.cpu` sets it,
 * and `availableParallelism()` does not see it (it counts the CPUs the process may run on).
 */
export function cpuQuotaCores(read: (file: string) => string = (file) => readFileSync(file, 'utf8')): number | undefined {
  const attempt = (fn: () => [number, number] | undefined) => {
    try {
      const [quota, period] = fn() ?? [NaN, NaN];
      return quota > 0 && period > 0 ? Math.max(1, Math.ceil(quota / period)) : undefined;
    } catch {
      return undefined;
    }
  };
  const v2 = attempt(() => {
    const [quota, period] = read('/sys/fs/cgroup/cpu.max').trim().split(/\s+/);
    return quota === 'max' ? undefined : [Number(quota), Number(period ?? 100_000)];
  });
  return (
    v2 ??
    attempt(() => [Number(read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us').trim()), Number(read('/sys/fs/cgroup/cpu/cpu.cfs_period_us').trim())])
  );
}

let cores: number | undefined;

/** The cores a run may use: the CPUs it may run on (affinity, cpusets), at most its CPU quota. Read once per process. */
export function usableCores(): number {
  return (cores ??= Math.min(availableParallelism(), cpuQuotaCores() ?? Infinity));
}

/** The worker count `workers: auto` picks: one per usable core, each with about `CALLS_PER_WORKER` calls in flight; 1 = the main thread alone. */
export function autoWorkers(concurrency: number, cores = usableCores()): number {
  return Math.max(1, Math.min(cores, Math.floor(concurrency / CALLS_PER_WORKER)));
}
