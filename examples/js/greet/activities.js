// greet: the smallest useful activity, plus `probe`, which checks that the
// host grants nothing (no files, no environment, no network) and reports
// what the JS engine lacks.
import { ApplicationError, config, hasHttp, info, log } from 'wharf-activity';

const invalid = (message) => ApplicationError.nonRetryable(message, 'InvalidArgument');

// StarlingMonkey (the JS engine inside componentize-js) has no filesystem,
// environment or socket API. fetch() works only in a module built with
// `build-js --http` (it traps otherwise). A probe without an API to try
// reports "no API".
async function probeNet(addr) {
  if (!hasHttp() || typeof fetch !== 'function') return { denied: true, error: 'no API' };
  try {
    const res = await fetch(`http://${addr}/`);
    return { denied: false, error: null, addr, status: res.status };
  } catch (e) {
    return { denied: true, error: String(e?.message ?? e), addr };
  }
}

function probeEnv() {
  const env = globalThis.process?.env;
  if (env === undefined) return { denied: true, error: 'no API' };
  const names = Object.keys(env).sort();
  return { denied: names.length === 0, error: null, count: names.length, names };
}

function probeFile() {
  const fs = globalThis.require?.('fs');
  if (fs === undefined) return { denied: true, error: 'no API' };
  try {
    const data = fs.readFileSync('/etc/passwd');
    return { denied: false, error: null, bytes: data.length };
  } catch (e) {
    return { denied: true, error: String(e?.message ?? e) };
  }
}

// What the JS engine lacks (guest-sdk/js/README.md, "What the engine
// lacks"), as trying each gives it; host/tests/polyglot.rs pins the answer.
function probeEngine() {
  const attempt = (f) => {
    try {
      return { ok: f() };
    } catch (e) {
      return { error: `${e?.name}: ${e?.message}` };
    }
  };
  return {
    denied: false,
    error: null,
    normalize: typeof ''.normalize,
    intl: typeof Intl,
    property_escapes: attempt(() => new RegExp('\\p{L}', 'u').test('a')),
    turkish_upper_i: 'i'.toLocaleUpperCase('tr'),
    number_en_us: (1234.5).toLocaleString('en-US'),
    shared_array_buffer: typeof SharedArrayBuffer,
    atomics: typeof Atomics,
    webassembly: typeof WebAssembly,
  };
}

export const activities = {
  greet(name) {
    if (typeof name !== 'string') throw invalid('greet takes a string');
    log.info(`greeting ${name} (attempt ${info().attempt})`);
    return `Hello, ${name}!`;
  },

  async probe(arg) {
    const what = arg?.what;
    let result;
    if (what === 'file') result = probeFile();
    else if (what === 'env') result = probeEnv();
    else if (what === 'net') result = await probeNet(String(arg.addr ?? '1.1.1.1:80'));
    else if (what === 'config') result = { denied: false, error: null, value: config.get(String(arg.key)) };
    else if (what === 'engine') result = probeEngine();
    else throw invalid('probe takes {"what": "file" | "env" | "net" | "config" | "engine"}');
    return { what, ...result };
  },
};
