#!/usr/bin/env node
import { main } from './cli.ts';

// The SDK's notice about its future Node requirement is not for our users' terminals; other warnings stay.
process.removeAllListeners('warning');
process.on('warning', (w) => {
  if (!/NodeVersionSupportWarning/.test(`${w.name} ${w.message}`)) process.stderr.write(`(node) ${w.name}: ${w.message}\n`);
});
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`partwise: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
