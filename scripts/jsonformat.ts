#!/usr/bin/env node
// jsonformat: log lines on stdin, JSON lines on stdout (see docs/shipper.md).
import { jsonformatCommand } from '../lib/commands/jsonformat-command.js';
import { runCli } from '../lib/commands/run-cli.js';

runCli(jsonformatCommand('jsonformat'));
