// The progress bar on stderr when stderr is a terminal (cron has none: it
// then stays silent). Bytes give the bar's fill when the size is known.
import cliProgress from 'cli-progress';

export interface ProgressCounts {
  lines: number;
  bytes: number;
  docs: number;
}

export interface Progress {
  update(c: ProgressCounts): void;
  stop(): void;
}

export function noProgress(): Progress {
  return { update() {}, stop() {} };
}

export function terminalProgress(stream: NodeJS.WriteStream, label: string, totalBytes: number | null): Progress {
  const started = Date.now();
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: totalBytes
        ? `${label} {bar} {percentage}% | {lines} lines | {mb} MB | {docs} docs | {rate} docs/s`
        : `${label} {lines} lines | {mb} MB | {docs} docs | {rate} docs/s`,
      hideCursor: true,
      clearOnComplete: false,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(totalBytes ?? 1, 0, { lines: 0, mb: '0.0', docs: 0, rate: 0 });
  return {
    update(c) {
      const s = Math.max(0.001, (Date.now() - started) / 1000);
      bar.update(totalBytes ? Math.min(c.bytes, totalBytes) : 0, {
        lines: c.lines,
        mb: (c.bytes / 1e6).toFixed(1),
        docs: c.docs,
        rate: Math.round(c.docs / s),
      });
    },
    stop() {
      bar.stop();
    },
  };
}
