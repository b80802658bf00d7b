#!/usr/bin/env node
import module from 'node:module';

// Node 22.1 and later keep V8's compiled code for partwise and the SDK between runs (in the OS's
// temp folder; NODE_DISABLE_COMPILE_CACHE=1 turns it off): ~35 ms of every start, a twentieth of a
// resume with little left to send. Enabled before anything else loads, so it covers all of it.
(module as { enableCompileCache?: () => unknown }).enableCompileCache?.();
const { main } = await import('./cli/main.ts');

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
