// The ClickHouse sink as the configuration describes it: the correlator's
// output and `couchlog backfill` build it here, so both send the same rows
// with the same batching, retries and dead-letter handling.
import type { ClickHouseClient } from '@clickhouse/client';
import { clickhouseUrl, type Config } from '../../../lib/config/load.js';
import { OperationError } from '../../../lib/errors.js';
import type { Logger } from '../../../lib/logger.js';
import type { CorrelatorMetrics } from '../../metrics.js';
import { BatchingSink } from '../batching-sink.js';
import { DeadLetterFile } from '../dead-letter-file.js';
import { ClickHouseDelivery, clickhouseErrorCode, connect, type ClickHouseTarget } from './clickhouse-delivery.js';
import { checkClickhouseTable } from './ensure-table.js';

export function clickhouseTarget(config: Config): ClickHouseTarget {
  const ch = config.clickhouse;
  return {
    url: clickhouseUrl(config),
    user: ch.user,
    password: ch.password ?? '',
    database: ch.database,
    table: ch.table,
    timeoutMs: config.correlator.outputs.clickhouse.timeout_ms,
    ownUser: config.clickhouse.url === null,
  };
}

export interface OpenedClickhouseSink {
  sink: BatchingSink;
  /** The sink's connection (closed with the sink), for queries beside it. */
  client: ClickHouseClient;
  target: ClickHouseTarget;
}

/**
 * Connects, checks that the table is there and migrated (an OperationError
 * that says to run setup otherwise), and builds the batching sink with
 * the dead letters in `deadLetterPath`. A ClickHouse that does not answer
 * at all (down, restarting, a network error) is an OperationError too,
 * unless `unreachable: 'start'`: the correlator then starts and the sink
 * retries until it answers, as it does when ClickHouse goes down later.
 */
export async function openClickhouseSink(
  config: Config,
  metrics: CorrelatorMetrics,
  log: Logger,
  deadLetterPath: string,
  overrides: { dropOnOverflow?: boolean; unreachable?: 'fail' | 'start' } = {},
): Promise<OpenedClickhouseSink> {
  const target = clickhouseTarget(config);
  const client = connect(target);
  try {
    await checkClickhouseTable(client, target.database, target.table);
  } catch (err) {
    // No answer from ClickHouse itself (no error code): nothing says the setup is wrong.
    if (overrides.unreachable === 'start' && !(err instanceof OperationError) && clickhouseErrorCode(err) === null) {
      log.warn(
        { sink: 'clickhouse', url: target.url, err: (err as Error).message },
        'ClickHouse does not answer at start: the correlator starts, and the ClickHouse sink retries until it does',
      );
    } else {
      await client.close();
      if (err instanceof OperationError) throw err;
      throw new OperationError(`ClickHouse at ${target.url} cannot be used: ${(err as Error).message}`);
    }
  }
  const o = config.correlator.outputs.clickhouse;
  const sink = new BatchingSink(
    'clickhouse',
    new ClickHouseDelivery(client, target, (n) => metrics.sinkCorrections.inc({ sink: 'clickhouse' }, n)),
    {
      batchSize: o.batch_size,
      maxBatchSize: o.max_batch_size,
      concurrency: o.concurrency,
      flushIntervalMs: o.flush_interval_ms,
      maxBufferSize: o.max_buffer_size,
      dropOnOverflow: overrides.dropOnOverflow ?? o.drop_on_overflow,
      retryInitialMs: o.retry_initial_ms,
      retryMaxMs: o.retry_max_ms,
    },
    new DeadLetterFile(deadLetterPath),
    metrics,
    log,
  );
  return { sink, client, target };
}
