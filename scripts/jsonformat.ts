#!/usr/bin/env node
// jsonformat: log lines on stdin, JSON lines on stdout (see docs/shipper.md).
import { jsonformatCommand } from '../cli/jsonformat-command.js';
import { runCli } from '../cli/run-cli.js';

runCli(jsonformatCommand('jsonformat'));
