// Builds a JavaScript activity module into a wharf:activity component.
//
//   node guest-sdk/js/build.mjs ACTIVITY_DIR -o OUT.wasm [--entry activities.js] [--http]
//
// (scripts/build-js wraps this and installs componentize-js when missing.)
//
// componentize-js takes one entry module; relative imports from it resolve
// inside the working directory at build time. So the build stages a directory:
//
//   stage/wharf-activity.js   the kit (this directory)
//   stage/app/...             a copy of ACTIVITY_DIR; the specifier
//                             'wharf-activity' is rewritten to the kit's path
//   stage/entry.js            export const activities = exportActivities(app.activities, ...)
//
// and componentizes stage/entry.js from inside stage/.
import { componentize } from '@bytecodealliance/componentize-js';
import wizer from '@bytecodealliance/wizer';
import { createHash } from 'node:crypto';
import { chmod, cp, mkdtemp, readFile, readdir, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeFinding, explainBuildError, scanSources } from './gaps.mjs';

const kitDir = dirname(fileURLToPath(import.meta.url));
const witDir = resolve(kitDir, '../../wit');

// WASI features of the StarlingMonkey engine we leave out. Kept: stdio
// (console.log/error reach the attempt's captured stdout/stderr; errors are
// reported), random (real Math.random/crypto.getRandomValues), clocks
// (Date.now, performance.now, setTimeout -> activity sleep). Dropped: http
// (fetch() over wasi:http: a tenant's outbound HTTP is opt-in per namespace,
// and without the import the module runs on hosts that link no wasi:http) and
// fetch-event (incoming HTTP handler; meaningless for activities).
// `--http` keeps http: fetch() then goes through the host's wasi:http, which
// allows only the namespace's allowlisted hosts. Without it, fetch() still
// exists in StarlingMonkey but traps when called (see hasHttp() in the kit).
const DEFAULT_DISABLED = ['http', 'fetch-event'];

function usage() {
  console.error('usage: build.mjs ACTIVITY_DIR -o OUT.wasm [--entry activities.js] [--http]');
  process.exit(2);
}

const argv = process.argv.slice(2);
let dir = null;
let out = null;
let entryName = 'activities.js';
let http = false;
while (argv.length) {
  const a = argv.shift();
  if (a === '-o' || a === '--output') out = argv.shift();
  else if (a === '--entry') entryName = argv.shift();
  else if (a === '--http') http = true;
  else if (a === '-h' || a === '--help') usage();
  else if (a.startsWith('-')) { console.error(`unknown option ${a}`); usage(); }
  else if (dir === null) dir = a;
  else usage();
}
if (!dir || !out || !entryName) usage();
dir = resolve(dir);
out = resolve(out);
try {
  await stat(join(dir, entryName));
} catch {
  console.error(`error: ${join(dir, entryName)} not found`);
  process.exit(1);
}

const SKIP = new Set(['node_modules', '.git', 'build', 'target']);
const IMPORT_KIT = /(\bfrom\s*|\bimport\s*\(?\s*)(['"])wharf-activity\2/g;

// The staged sources, for the scan for the engine's gaps (gaps.mjs).
const staged = [];
const callerDir = process.cwd();
// A file as the author would name it: relative to where the build was
// started when under it, else absolute.
const shown = (file) => {
  const rel = relative(callerDir, file);
  return rel && !rel.startsWith('..') ? rel : file;
};

async function stageTree(src, dst, depth) {
  await mkdir(dst, { recursive: true });
  for (const ent of await readdir(src, { withFileTypes: true })) {
    if (ent.name.startsWith('.') || SKIP.has(ent.name)) continue;
    const from = join(src, ent.name);
    const to = join(dst, ent.name);
    if (ent.isDirectory()) {
      await stageTree(from, to, depth + 1);
    } else if (/\.(m?js)$/.test(ent.name)) {
      const kitPath = '../'.repeat(depth) + 'wharf-activity.js';
      const text = await readFile(from, 'utf8');
      staged.push({ shown: shown(from), rel: relative(dir, from), text });
      // Same lines as the source: errors and findings keep its line numbers.
      await writeFile(to, text.replace(IMPORT_KIT, (_, pre, q) => `${pre}${q}${kitPath}${q}`));
    } else if (/\.json$/.test(ent.name)) {
      await cp(from, to);
    }
  }
}

/**
 * Reproducible builds: Wizer runs the module's top level and snapshots what
 * the engine saw (random hash seeds, clocks, file times and inodes, the
 * names of temporary directories). With WHARF_FIXED_RUN and WHARF_FIXED_LIB
 * (guest-sdk/fixed-env, built by scripts/build-js) it runs with those fixed
 * (fixed-wizer.mjs),
 * seeded by a hash of the staged sources; returns the path of the program
 * that starts Wizer so, or null to use Wizer as it is.
 */
async function fixedWizer(stage) {
  const { WHARF_FIXED_RUN: run, WHARF_FIXED_LIB: lib } = process.env;
  if (!run || !lib) return null;
  const hash = createHash('sha256');
  for (const file of ['wharf-activity.js', 'entry.js']) hash.update(await readFile(join(stage, file)));
  for (const s of [...staged].sort((a, b) => (a.rel < b.rel ? -1 : 1))) hash.update(s.rel).update(s.text);
  const config = { wizer, run: resolve(run), lib: resolve(lib), seed: hash.digest('hex'), stage };
  const script = join(wrapperDir, 'wizer.mjs');
  await writeFile(
    script,
    `#!${process.execPath}\n` +
      `import { run } from ${JSON.stringify(join(kitDir, 'fixed-wizer.mjs'))};\n` +
      `run(${JSON.stringify(config)});\n`,
  );
  await chmod(script, 0o755);
  return script;
}

/** Ends the build after its error was printed. */
class Stop extends Error {}

const started = Date.now();
const stage = await mkdtemp(join(tmpdir(), 'wharf-build-js-'));
// Outside the stage: the stage is the guest's view of the file system.
const wrapperDir = await mkdtemp(join(tmpdir(), 'wharf-build-js-wizer-'));
try {
  await cp(join(kitDir, 'wharf-activity.js'), join(stage, 'wharf-activity.js'));
  await stageTree(dir, join(stage, 'app'), 1);
  const findings = scanSources(staged);
  for (const f of findings) console.error(describeFinding(f));
  if (findings.some((f) => f.fatal)) {
    process.exitCode = 1;
    throw new Stop();
  }
  const appEntry = './' + posix.join('app', ...entryName.split(sep));
  await writeFile(
    join(stage, 'entry.js'),
    `import * as app from ${JSON.stringify(appEntry)};\n` +
      `import { exportActivities } from './wharf-activity.js';\n` +
      `export const activities = exportActivities(app.activities ?? app.default, ${JSON.stringify({ http })});\n`,
  );
  const showApp = (file) => shown(join(dir, file));
  const wizerBin = await fixedWizer(stage);
  process.chdir(stage);
  let component;
  try {
    ({ component } = await componentize({
      sourcePath: join(stage, 'entry.js'),
      witPath: witDir,
      worldName: 'activity',
      disableFeatures: http ? DEFAULT_DISABLED.filter((f) => f !== 'http') : DEFAULT_DISABLED,
      ...(wizerBin ? { wizerBin } : {}),
    }));
  } catch (e) {
    // componentize-js' own stack says nothing about the author's code.
    console.error(explainBuildError(String(e?.message ?? e), showApp));
    process.exitCode = 1;
    throw new Stop();
  }
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, component);
  console.error(`built ${out} (${component.length} bytes) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (e) {
  if (!(e instanceof Stop)) throw e;
} finally {
  await rm(stage, { recursive: true, force: true });
  await rm(wrapperDir, { recursive: true, force: true });
}
