#!/usr/bin/env node
// npm run bench:engine [-- --events N --rate C --runs R --buffer N --seed S --json]
// Benchmark (a): the correlation engine alone on generated A/B streams.
// For the memory figure node's gc is needed: with --expose-gc it is used as
// is, otherwise the script turns the flag on at run time.
import { Command } from 'commander';
import { benchEngine, formatReport } from '../bench/engine-bench.js';

const opts = new Command('bench-engine')
  // The generated events all stay in memory during the run (the correlator
  // itself never holds more than its buffers): far above this, the benchmark
  // measures V8's garbage collector marking its own input, not the engine.
  .option('--events <n>', 'A and B events in total', Number, 200_000)
  .option('--rate <n>', 'new connections per second of event time (sets how full the buffers get)', Number, 150)
  .option('--runs <n>', 'timed runs over the same events (the median is reported)', Number, 3)
  .option('--buffer <n>', 'buffered B and pending A events for the memory figure', Number, 100_000)
  .option('--seed <n>', 'seed of the generated streams', Number, 1)
  .option('--json', 'print the figures as JSON too')
  .parse()
  .opts<{ events: number; rate: number; runs: number; buffer: number; seed: number; json?: boolean }>();

const report = benchEngine({ events: opts.events, connectionsPerSecond: opts.rate, runs: opts.runs, bufferN: opts.buffer, seed: opts.seed }, (line) =>
  process.stderr.write(`${line}\n`),
);
process.stdout.write(`${formatReport(report)}\n`);
if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
