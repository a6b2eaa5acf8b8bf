// Line-to-document conversion shared by `jsonformat` and `ship`: a schema
// (or preset) gives one document per line, `--format auditd` one per audit
// event (several lines), `--format json` (ship only) takes each line as a
// JSON object. Each input line ends up in exactly one of doc(), event() or
// mismatch(), so callers can account for every line.
import { UsageError } from '../../lib/errors.js';
import { parseAuditRecord } from './auditd-record.js';
import { AuditReassembler, auditEventJson, type AuditEvent } from './auditd-reassembler.js';
import { parseAssignments, parseTypes } from './field-options.js';
import { LineFormatter } from './line-formatter.js';
import { findPreset } from './presets.js';

export interface ConvertSink<M> {
  /** A document made of one line; existingId: the `_id` the line already has. */
  doc(json: string, meta: M, existingId?: string): void;
  /** A document made of several lines (an audit event); json null: nothing to send (a stray EOE). */
  event(json: string | null, metas: M[]): void;
  /** A line that gives no document; reason says why. */
  mismatch(meta: M, reason: string): void;
}

export interface Converter<M> {
  /** One line without its "\n" (blank lines are the caller's to skip). */
  line(text: string, meta: M): void;
  /** End of input. final: emit everything still waiting; else only what can no longer change (see AuditConverter). */
  end(final: boolean): void;
  /** A live input has been quiet for a while. */
  idle(): void;
  /** Meta of the lines read but not yet given to the sink. */
  pending(): Iterable<M>;
}

export interface ConvertOptions {
  schema?: string;
  preset?: string;
  format?: 'json' | 'auditd' | 'schema';
  fields?: string[];
  types?: string[];
  /** auditd: seconds to wait for an EOE. */
  auditTimeoutS?: number;
  auditMaxOpen?: number;
}

export type ConverterFactory = <M>(sink: ConvertSink<M>) => Converter<M>;

/**
 * Checks the options once (bad schema, unknown preset: exit code 2) and
 * returns a factory. `defaultFormat` is what no option means: `schema`
 * (a required --schema) for jsonformat, `json` for ship.
 */
export function converterFactory(o: ConvertOptions, defaultFormat: 'json' | 'schema'): ConverterFactory {
  const chosen = [o.schema !== undefined, o.preset !== undefined, o.format !== undefined && o.format !== 'schema'].filter(Boolean).length;
  if (chosen > 1) throw new UsageError('give only one of --schema, --preset and --format');
  const format = o.schema !== undefined || o.preset !== undefined ? 'schema' : (o.format ?? defaultFormat);
  if (format === 'auditd') {
    if ((o.fields?.length ?? 0) > 0 || (o.types?.length ?? 0) > 0) throw new UsageError('--fields and --types do not apply to --format auditd');
    const timeoutS = o.auditTimeoutS ?? 2;
    const maxOpen = o.auditMaxOpen ?? 10_000;
    if (!(timeoutS >= 0)) throw new UsageError('--audit-timeout must be a number of seconds');
    return (sink) => new AuditConverter(sink, timeoutS, maxOpen);
  }
  if (format === 'json') {
    if ((o.fields?.length ?? 0) > 0 || (o.types?.length ?? 0) > 0) throw new UsageError('--fields and --types need --schema or --preset');
    return (sink) => new JsonLineConverter(sink);
  }
  const preset = o.preset !== undefined ? findPreset(o.preset) : undefined;
  const schema = o.schema ?? preset?.schema;
  if (schema === undefined) throw new UsageError('give --schema, --preset or --format');
  const formatter = new LineFormatter({
    schema,
    fields: parseAssignments(o.fields ?? [], '--fields'),
    types: parseTypes([...(preset?.types ? [preset.types] : []), ...(o.types ?? [])]),
  });
  return (sink) => new SchemaConverter(sink, formatter);
}

export class SchemaConverter<M> implements Converter<M> {
  constructor(
    private readonly sink: ConvertSink<M>,
    /** Public for format-stream.ts, which runs its byte path (formatter.bytes) itself. */
    readonly formatter: LineFormatter,
  ) {}

  line(text: string, meta: M): void {
    const json = this.formatter.format(text);
    if (json === null) this.sink.mismatch(meta, this.formatter.lastMismatch.reason);
    else this.sink.doc(json, meta);
  }

  end(): void {}
  idle(): void {}
  *pending(): Iterable<M> {}
}

/** Ship's default: each line is already a JSON object (jsonformat's output, an app's NDJSON). */
export class JsonLineConverter<M> implements Converter<M> {
  constructor(private readonly sink: ConvertSink<M>) {}

  line(text: string, meta: M): void {
    const trimmed = text.trim();
    let value: unknown;
    try {
      value = JSON.parse(trimmed);
    } catch (err) {
      this.sink.mismatch(meta, `not JSON: ${(err as Error).message}`);
      return;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      this.sink.mismatch(meta, 'not a JSON object');
      return;
    }
    const id = (value as { _id?: unknown })._id;
    if (id !== undefined && (typeof id !== 'string' || id === '')) {
      this.sink.mismatch(meta, '_id must be a non-empty string');
      return;
    }
    // The text is kept as written (numbers beyond 2^53 survive).
    this.sink.doc(trimmed, meta, id);
  }

  end(): void {}
  idle(): void {}
  *pending(): Iterable<M> {}
}

export class AuditConverter<M> implements Converter<M> {
  private readonly reassembler: AuditReassembler<M>;

  constructor(
    private readonly sink: ConvertSink<M>,
    timeoutS: number,
    maxOpen: number,
    now?: () => number,
  ) {
    this.reassembler = new AuditReassembler<M>({
      timeoutS,
      maxOpen,
      now,
      emit: (event: AuditEvent<M>) => {
        const empty = Object.keys(event.records).length === 0;
        this.sink.event(empty ? null : auditEventJson(event), event.meta);
      },
    });
  }

  line(text: string, meta: M): void {
    const rec = parseAuditRecord(text);
    if (rec === null) this.sink.mismatch(meta, 'not an audit record (type=... msg=audit(<time>:<serial>): ...)');
    else this.reassembler.push(rec, meta);
  }

  /**
   * final: the input is over for good (a pipe, a finished file): everything
   * leaves. Otherwise (a file auditd still writes, read again next run)
   * only events older than the timeout on the wall clock leave: the others
   * may still get their EOE, and their lines are read again next time.
   */
  end(final: boolean): void {
    if (final) this.reassembler.flush();
    else this.reassembler.expireOlderThan(Date.now() / 1000);
  }

  idle(): void {
    this.reassembler.idleExpire();
  }

  pending(): Iterable<M> {
    return this.reassembler.pendingMeta();
  }
}
