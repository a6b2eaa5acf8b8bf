// `jsonformat` (scripts/jsonformat.ts) and `couchlog jsonformat`: the same
// options, defined once here.
import { createReadStream } from 'node:fs';
import { Command, Option } from 'commander';
import { collect, intAtLeast, timeoutSeconds } from './options.js';
import { converterFactory } from '../shipper/jsonformat/converter.js';
import { formatFd, formatStream, type FormatStats } from '../shipper/jsonformat/format-stream.js';
import { PRESETS } from '../shipper/jsonformat/presets.js';
import { quietOnClosedStdout } from './run-cli.js';

export interface JsonformatCliOptions {
  schema?: string;
  preset?: string;
  format?: 'schema' | 'auditd';
  fields: string[];
  types: string[];
  strict?: boolean;
  reportLimit: number;
  auditTimeout: number;
  listPresets?: boolean;
}

/** The conversion options shared with `ship`. */
export function addConversionOptions(cmd: Command, formats: string[]): Command {
  return cmd
    .option(
      '-s, --schema <schema>',
      'schema: \'$date $hour _ _ _ \\[$process\\] _ $ip\' ($name captures, _ skips, "$q" and [$b] may hold spaces, $rest... takes the rest)',
    )
    .addOption(new Option('-p, --preset <name>', 'a predefined schema').choices(Object.keys(PRESETS)))
    .addOption(new Option('--format <format>', 'input format').choices(formats))
    .option('-f, --fields <name=value,...>', 'constant fields added to every object (repeatable)', collect, [])
    .option('-t, --types <name=type,...>', 'convert captured fields: int, float, bool, string (repeatable)', collect, [])
    .option('--strict', 'fail the run at the first line that does not match')
    .option('--report-limit <n>', 'non-matching lines reported one by one on stderr (the rest are counted)', intAtLeast(0, '--report-limit'), 100)
    .option('--audit-timeout <seconds>', 'auditd: emit an event without its EOE after this long', timeoutSeconds('--audit-timeout'), 2);
}

export function presetList(): string {
  return Object.entries(PRESETS)
    .map(([name, p]) =>
      [
        `${name}: ${p.description}`,
        `  schema: ${p.schema}`,
        ...(p.types ? [`  types:  ${p.types}`] : []),
        `  sample: ${p.sample}`,
        `  output: ${p.output}`,
        '',
      ].join('\n'),
    )
    .join('\n');
}

export function jsonformatCommand(name = 'jsonformat'): Command {
  const cmd = new Command(name).description('read log lines on stdin, write one JSON object per line (or per audit event)');
  addConversionOptions(cmd, ['schema', 'auditd'])
    .option('--list-presets', 'print the presets with a sample line and its output')
    .showHelpAfterError()
    .action(async (o: JsonformatCliOptions) => {
      if (o.listPresets) {
        process.stdout.write(presetList());
        return;
      }
      const make = converterFactory(
        { schema: o.schema, preset: o.preset, format: o.format, fields: o.fields, types: o.types, auditTimeoutS: o.auditTimeout },
        'schema',
      );
      const report = (message: string) => process.stderr.write(`${name}: ${message}\n`);
      const loopOptions = { strict: o.strict === true, reportLimit: o.reportLimit };
      let stats: FormatStats;
      if (o.format === 'auditd') {
        // Streams and a timer: on a live audit stream, events whose EOE never
        // comes must leave while stdin is quiet.
        quietOnClosedStdout();
        stats = await formatStream(stdinChunks(), process.stdout, report, make, { ...loopOptions, idleCheckMs: Math.max(100, (o.auditTimeout * 1000) / 4) });
      } else {
        try {
          stats = formatFd(0, 1, report, make, loopOptions);
        } catch (err) {
          // The reader went away (`| head`): not an error of ours.
          if ((err as NodeJS.ErrnoException).code === 'EPIPE') return;
          throw err;
        }
      }
      if (stats.unmatched > 0) report(`${stats.unmatched} of ${stats.lines - stats.blank} lines did not match and were not converted`);
    });
  return cmd;
}

/** stdin in chunks of 64 KiB, read with fs (measured fastest: larger chunks cost more in cache misses than they save in calls). */
export function stdinChunks() {
  return createReadStream('', { fd: 0, highWaterMark: 1 << 16, autoClose: false });
}
