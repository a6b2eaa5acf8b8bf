// Prometheus metrics of one correlator. Counters of the pure engine are
// mirrored into gauges at scrape time, so the engine stays free of I/O.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class CorrelatorMetrics {
  readonly registry = new Registry();
  private readonly r = [this.registry];

  readonly eventsIn = new Gauge({
    name: 'couchlog_correlator_events_in_total',
    help: 'Events read from the feeds and passed to the engine, per side',
    labelNames: ['side'] as const,
    registers: this.r,
  });
  readonly skipped = new Counter({
    name: 'couchlog_correlator_skipped_total',
    help: 'Changes skipped before the engine, per side and reason',
    labelNames: ['side', 'reason'] as const,
    registers: this.r,
  });
  readonly rewinds = new Counter({
    name: 'couchlog_correlator_feed_rewinds_total',
    help: 'Times a feed position was not in its database any more (made again, or restored from an older copy) and the feed was read from the start, per side',
    labelNames: ['side'] as const,
    registers: this.r,
  });
  readonly withdrawn = new Gauge({
    name: 'couchlog_correlator_withdrawn_total',
    help: 'Earlier contents of documents an admin deleted or edited, taken back (their connection decided again without them), per side',
    labelNames: ['side'] as const,
    registers: this.r,
  });
  readonly withdrawalsUnreadable = new Counter({
    name: 'couchlog_correlator_withdrawals_unreadable_total',
    help: 'Earlier revisions of deleted or edited documents whose content was gone (compacted away) when read: not taken back, per side',
    labelNames: ['side'] as const,
    registers: this.r,
  });
  readonly correlated = new Gauge({ name: 'couchlog_correlator_correlated_total', help: 'A events matched with a B event', registers: this.r });
  readonly orphans = new Gauge({
    name: 'couchlog_correlator_orphans_total',
    help: 'Orphans emitted, per side',
    labelNames: ['side'] as const,
    registers: this.r,
  });
  readonly evictions = new Gauge({
    name: 'couchlog_correlator_evictions_total',
    help: 'Entries evicted from full buffers, per side',
    labelNames: ['side'] as const,
    registers: this.r,
  });
  readonly dropped = new Gauge({
    name: 'couchlog_correlator_dropped_total',
    help: 'Events the engine dropped by policy, per reason',
    labelNames: ['reason'] as const,
    registers: this.r,
  });
  readonly late = new Gauge({
    name: 'couchlog_correlator_late_events_total',
    help: 'Events out of order by more than reorder_slack_ms, per side',
    labelNames: ['side'] as const,
    registers: this.r,
  });
  readonly tooLate = new Gauge({
    name: 'couchlog_correlator_too_late_total',
    help: 'Events later than allowed_lateness behind the watermark, per side: checked against log_correlated (decided before: a duplicate), else decided with what was in memory',
    labelNames: ['side'] as const,
    registers: this.r,
  });
  readonly future = new Gauge({
    name: 'couchlog_correlator_future_events_total',
    help: 'Events dated more than correlator.max_clock_skew ahead of this host clock when read, per side: they wait for the clock and do not move the watermark',
    labelNames: ['side'] as const,
    registers: this.r,
  });
  readonly corrections = new Gauge({
    name: 'couchlog_correlator_corrections_total',
    help: 'Records emitted again because a late event changed them (revision > 1, or deleted)',
    registers: this.r,
  });
  readonly lookups = new Gauge({
    name: 'couchlog_correlator_lookups_total',
    help: 'Connections looked up in the input databases: partners of a late event had left memory, or a document past the lateness horizon may have been decided before',
    registers: this.r,
  });
  readonly duplicates = new Gauge({
    name: 'couchlog_correlator_duplicate_events_total',
    help: 'Changes delivered again (same side and document id), ignored; past the lateness horizon, known by what log_correlated holds',
    registers: this.r,
  });
  readonly lookupSeconds = new Histogram({
    name: 'couchlog_correlator_lookup_seconds',
    help: 'Time to answer one round of connection lookups (view queries and prior records)',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: this.r,
  });
  readonly sinkCorrections = new Counter({
    name: 'couchlog_correlator_sink_corrections_total',
    help: 'Corrections (revision > 1 or deletions) acknowledged by a sink',
    labelNames: ['sink'] as const,
    registers: this.r,
  });
  readonly sinkPartialWrites = new Counter({
    name: 'couchlog_correlator_sink_partial_writes_total',
    help: 'Records CouchDB stored on fewer copies than its write quorum (202), read back from every copy before they count as delivered',
    labelNames: ['sink'] as const,
    registers: this.r,
  });
  readonly sinkResurrections = new Counter({
    name: 'couchlog_correlator_sink_resurrections_total',
    help: 'Deleted records found live again when checked once the cluster settled (a copy applied an earlier write late), and deleted again',
    labelNames: ['sink'] as const,
    registers: this.r,
  });
  readonly sinkRechecksGivenUp = new Counter({
    name: 'couchlog_correlator_sink_rechecks_given_up_total',
    help: 'Deleted records no longer checked for a late copy bringing them back, after 60 failed checks in a row (CouchDB unreachable)',
    labelNames: ['sink'] as const,
    registers: this.r,
  });
  readonly bufferSize = new Gauge({
    name: 'couchlog_correlator_buffer_size',
    help: 'Entries held by the engine, per buffer',
    labelNames: ['buffer'] as const,
    registers: this.r,
  });
  readonly watermarkLag = new Gauge({
    name: 'couchlog_correlator_watermark_lag_seconds',
    help: "Wall clock minus the watermark (min of both feeds' event-time progress)",
    registers: this.r,
  });
  readonly feedBacklog = new Gauge({
    name: 'couchlog_correlator_feed_backlog',
    help: 'Changes not yet read, per side (when CouchDB reports it)',
    labelNames: ['side'] as const,
    registers: this.r,
  });
  readonly feedFailures = new Counter({
    name: 'couchlog_correlator_feed_failures_total',
    help: 'Failed _changes reads, per side (retried with backoff)',
    labelNames: ['side'] as const,
    registers: this.r,
  });
  readonly lookupFailures = new Counter({
    name: 'couchlog_correlator_lookup_failures_total',
    help: 'Failed connection lookups (retried with backoff; the connections wait undecided)',
    registers: this.r,
  });
  readonly checkpointFailures = new Counter({
    name: 'couchlog_correlator_checkpoint_save_failures_total',
    help: 'Checkpoints that could not be saved (a later one is taken and tried)',
    registers: this.r,
  });
  readonly secondInstance = new Counter({
    name: 'couchlog_correlator_second_instance_total',
    help: 'Another correlator seen writing this checkpoint: stopped="this" (this one started later and stops), "other" (the other one will)',
    labelNames: ['stopped'] as const,
    registers: this.r,
  });
  readonly sinkWrites = new Counter({
    name: 'couchlog_correlator_sink_writes_total',
    help: 'Records acknowledged by a sink',
    labelNames: ['sink'] as const,
    registers: this.r,
  });
  readonly sinkFailures = new Counter({
    name: 'couchlog_correlator_sink_failures_total',
    help: 'Failed deliveries, per sink and kind (retry; config: our setup refused, retried; permanent: dead-lettered)',
    labelNames: ['sink', 'kind'] as const,
    registers: this.r,
  });
  readonly sinkRetries = new Counter({
    name: 'couchlog_correlator_sink_retries_total',
    help: 'Retries after a retriable failure, per sink',
    labelNames: ['sink'] as const,
    registers: this.r,
  });
  readonly sinkDropped = new Counter({
    name: 'couchlog_correlator_sink_dropped_total',
    help: 'Records dropped by drop_on_overflow, per sink',
    labelNames: ['sink'] as const,
    registers: this.r,
  });
  readonly sinkDeadLetters = new Counter({
    name: 'couchlog_correlator_sink_dead_letters_total',
    help: 'Records refused for good and written to the dead-letter file, per sink',
    labelNames: ['sink'] as const,
    registers: this.r,
  });
  readonly sinkBacklog = new Gauge({
    name: 'couchlog_correlator_sink_backlog',
    help: 'Records accepted and not yet acknowledged, per sink',
    labelNames: ['sink'] as const,
    registers: this.r,
  });
  readonly checkpointAge = new Gauge({
    name: 'couchlog_correlator_checkpoint_age_seconds',
    help: 'Seconds since the checkpoint was last saved',
    registers: this.r,
  });

  constructor(defaults = true) {
    if (defaults) collectDefaultMetrics({ register: this.registry, prefix: 'couchlog_correlator_' });
  }
}
