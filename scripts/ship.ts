#!/usr/bin/env node
// couchlog-ship: the shipper on its own (same as `couchlog ship`, see docs/shipper.md).
import { shipCommand } from '../lib/commands/ship-command.js';
import { runCli } from '../lib/commands/run-cli.js';

runCli(shipCommand('couchlog-ship'));
