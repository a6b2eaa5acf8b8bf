// CPU seconds (user + system) a process has used so far, from
// /proc/<pid>/stat: benchmarks report where the time went. Linux only;
// null elsewhere or when the process is gone.
import { readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100;

export function processCpuSeconds(pid: number | null): number | null {
  return pid === null ? null : cpuOf(`/proc/${pid}/stat`);
}

/**
 * CPU seconds of a process's main thread alone: for a Node.js server, the
 * one thread that runs its JavaScript (LevelDB and libuv work on others).
 */
export function mainThreadCpuSeconds(pid: number | null): number | null {
  return pid === null ? null : cpuOf(`/proc/${pid}/task/${pid}/stat`);
}

function cpuOf(statFile: string): number | null {
  try {
    const stat = readFileSync(statFile, 'utf8');
    // Fields after the command name, which may itself contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return null;
  }
}

/**
 * CPU seconds each named process uses from now until the returned function
 * is called; `mainThreads` names processes whose main thread is measured alone.
 */
export function cpuMeter(pids: Record<string, number | null>, mainThreads: Record<string, number | null> = {}): () => Record<string, number | null> {
  const all = [
    ...Object.entries(pids).map(([name, pid]) => ({ name, read: () => processCpuSeconds(pid) })),
    ...Object.entries(mainThreads).map(([name, pid]) => ({ name, read: () => mainThreadCpuSeconds(pid) })),
  ];
  const start = Object.fromEntries(all.map(({ name, read }) => [name, read()]));
  return () =>
    Object.fromEntries(
      all.map(({ name, read }) => {
        const now = read();
        const then = start[name];
        return [name, now === null || then === null || then === undefined ? null : now - then];
      }),
    );
}
