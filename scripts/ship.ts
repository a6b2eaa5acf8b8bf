#!/usr/bin/env node
// couchlog-ship: the shipper on its own (same as `couchlog ship`, see docs/shipper.md).
import { shipCommand } from '../cli/ship-command.js';
import { runCli } from '../cli/run-cli.js';
import { usageErrorsExit2 } from '../cli/options.js';

// commander's own usage errors (a bad option value) exit with 1 unless told: 2, as `couchlog ship`.
runCli(usageErrorsExit2(shipCommand('couchlog-ship')));
