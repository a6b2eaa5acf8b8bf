#!/usr/bin/env node
// jsonformat: log lines on stdin, JSON lines on stdout (see docs/shipper.md).
import { jsonformatCommand } from '../cli/jsonformat-command.js';
import { runCli } from '../cli/run-cli.js';
import { usageErrorsExit2 } from '../cli/options.js';

// commander's own usage errors (a bad option value) exit with 1 unless told: 2, as `couchlog jsonformat`.
runCli(usageErrorsExit2(jsonformatCommand('jsonformat')));
