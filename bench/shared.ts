/**
 * What the bench's section processes and their load-generator children share: which CPUs a process
 * may run on and whether pinning is possible, and one-line errors and timeouts.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

/** Where a section pins the server and its load generator: one CPU each. */
export interface Pinning {
  readonly server: string;
  readonly client: string;
}

/** CPU 0 for the server and CPU 1 for the load, when `taskset` works here (Linux, two CPUs or more). */
export function pinningAvailable(): Pinning | null {
  if (process.platform !== 'linux' || cpus().length < 2) return null;
  const probe = spawnSync('taskset', ['-p', String(process.pid)], { encoding: 'utf8', timeout: 5000 });
  return probe.status === 0 ? { server: '0', client: '1' } : null;
}

/** The CPUs a process (this one by default) may run on, from /proc (Linux), e.g. `0`. */
export function allowedCpus(pid: number | 'self' = 'self'): string | null {
  try {
    return /^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? null;
  } catch {
    return null;
  }
}

/** An error as one line of a report. */
export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** `promise`, or a rejection naming `what` after `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}
