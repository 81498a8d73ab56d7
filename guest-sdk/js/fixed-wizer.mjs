// Runs Wizer (componentize-js' pre-initialiser) so that the snapshot it takes
// depends on the sources alone: the build (build.mjs) starts this in Wizer's
// place when guest-sdk/fixed-env's tools are available. Wizer runs under
// wharf-fixed-run (file metadata, random) with the fixed-clock library.
//
// Two things besides:
// componentize-js hands the guest host paths of two temporary directories
// (its own work directory, preopened under its host name, and the build's
// stage, named in --strip-path-prefix). Their names are random, and the
// engine keeps them in memory. Here the work directory is preopened as
// /wharf-sources and the stage prefix becomes "/", in the arguments and in
// the runtime arguments Wizer reads from standard input.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const SOURCES = '/wharf-sources';

/**
 * `config`: { wizer, run, lib, seed, stage }: the real Wizer,
 * wharf-fixed-run, the fixed-clock library, the seed for the random stream
 * and the build's stage directory.
 */
export function run(config) {
  const renames = [[config.stage + '/', '/']];
  const args = process.argv.slice(2).map((arg) => {
    const m = /^--dir=(.*\/sources)$/.exec(arg);
    if (!m) return arg;
    renames.unshift([m[1], SOURCES]);
    return `--mapdir=${SOURCES}::${m[1]}`;
  });
  let input = readFileSync(0, 'utf8');
  for (const [from, to] of renames) input = input.replaceAll(from, to);
  const child = spawnSync(config.run, [config.wizer, ...args], {
    input,
    stdio: ['pipe', 'inherit', 'inherit'],
    env: {
      ...process.env,
      WHARF_FIXED_LIB: config.lib,
      WHARF_FIXED_SEED: config.seed,
      WHARF_FIXED_ROOT: config.stage,
      WHARF_FIXED_HIDE: '1',
    },
  });
  if (child.error) {
    console.error(`error: could not start Wizer (${config.wizer}): ${child.error.message}`);
    process.exit(1);
  }
  if (child.signal) process.kill(process.pid, child.signal);
  process.exit(child.status ?? 1);
}
