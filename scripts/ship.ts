#!/usr/bin/env node
// couchlog-ship: the shipper on its own (same as `couchlog ship`, see docs/shipper.md).
import { shipCommand } from '../cli/ship-command.js';
import { runCli } from '../cli/run-cli.js';

runCli(shipCommand('couchlog-ship'));
