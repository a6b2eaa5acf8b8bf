// CPU seconds (user + system) a process has used so far, from
// /proc/<pid>/stat: benchmarks report where the time went. Linux only;
// null elsewhere or when the process is gone.
import { readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100;

export function processCpuSeconds(pid: number | null): number | null {
  if (pid === null) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may itself contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return null;
  }
}

/** CPU seconds each named process uses from now until the returned function is called. */
export function cpuMeter(pids: Record<string, number | null>): () => Record<string, number | null> {
  const start = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, processCpuSeconds(pid)]));
  return () =>
    Object.fromEntries(
      Object.entries(pids).map(([name, pid]) => {
        const now = processCpuSeconds(pid);
        const then = start[name];
        return [name, now === null || then === null || then === undefined ? null : now - then];
      }),
    );
}
