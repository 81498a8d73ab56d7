// Runs wharf:activity components under Node, standing in for the Rust host
// while testing the guest kits: jco transpiles the component, preview2-shim
// provides WASI sandboxed like Wharf's defaults (no preopens, no env, no
// sockets, outgoing HTTP denied), a mock `context` records heartbeats and
// log lines, and `config` grants nothing. Every run gets a fresh instance, as
// every attempt does in Wharf.
//
// Node 20 needs --experimental-wasm-extended-const for componentize-py output.
import { transpile } from '@bytecodealliance/jco-transpile';
import { WASIShim } from '@bytecodealliance/preview2-shim/instantiation';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

const enc = new TextEncoder();
const dec = new TextDecoder();

export const jsonPayload = (value) => ({
  metadata: [['encoding', enc.encode('json/plain')]],
  data: enc.encode(JSON.stringify(value)),
});
export const rawPayload = (encoding, data = new Uint8Array()) => ({
  metadata: [['encoding', enc.encode(encoding)]],
  data,
});

/** JSON-friendly view of a payload: json/plain is decoded, others shown raw. */
export function showPayload(p) {
  const e = dec.decode(p.metadata.find(([k]) => k === 'encoding')?.[1] ?? new Uint8Array());
  if (e === 'json/plain') return JSON.parse(dec.decode(p.data));
  return { encoding: e, data: Buffer.from(p.data).toString('base64') };
}

/** JSON-friendly view of an activity-error (or of a trap). */
function showError(e) {
  const v = e?.payload ?? e;
  if (v?.tag === 'failed') {
    const f = v.val;
    return {
      failed: {
        message: f.message, type: f.errorType, nonRetryable: f.nonRetryable,
        details: f.details.map(showPayload),
        nextRetryDelayMs: f.nextRetryDelayMs === undefined ? null : Number(f.nextRetryDelayMs),
      },
    };
  }
  if (v?.tag === 'cancelled' || v?.tag === 'will-complete-async') return v.tag;
  return { trap: String(e?.message ?? e) };
}

export async function loadComponent(file) {
  const bytes = await readFile(file);
  const hash = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
  const out = join(tmpdir(), 'wharf-jco-cache', hash);
  const entry = join(out, 'component.js');
  try {
    await readFile(entry);
  } catch {
    const { files } = await transpile(file, { name: 'component', instantiation: 'async', outDir: out });
    for (const [p, b] of Object.entries(files)) {
      await mkdir(dirname(p), { recursive: true });
      await writeFile(p, b);
    }
  }
  const { instantiate } = await import(pathToFileURL(entry));
  const modules = new Map();
  const getCoreModule = async (name) => {
    if (!modules.has(name)) modules.set(name, await WebAssembly.compile(await readFile(join(out, name))));
    return modules.get(name);
  };

  // The process cache lives as long as this loaded component, as the host
  // keeps it across the attempts of one module on one process.
  const cached = new Map();
  const cache = {
    get: (key) => cached.get(key),
    set(key, value) {
      cached.set(key, Uint8Array.from(value));
    },
    delete(key) {
      cached.delete(key);
    },
  };

  async function instance(context) {
    const shim = new WASIShim({ sandbox: { preopens: {}, env: {}, args: [], enableNetwork: false } });
    const imports = shim.getImportObject();
    imports['wasi:http/outgoing-handler'] = {
      handle() {
        throw { tag: 'HTTP-request-denied' };
      },
    };
    // No configuration is granted here: every variable reads as unset.
    const config = { get: () => undefined, grantedKeys: () => [] };
    const inst = await instantiate(getCoreModule, {
      ...imports,
      'wharf:activity/context': context,
      'wharf:activity/config': config,
      'wharf:activity/cache': cache,
    });
    return inst.activities ?? inst['wharf:activity/activities@0.1.0'];
  }

  return {
    async activityTypes() {
      const outside = () => {
        throw new Error('context called outside run');
      };
      const context = { info: outside, heartbeat: outside, isCancelled: outside, log: outside };
      return (await instance(context)).activityTypes();
    },
    /**
     * One attempt. opts: attempt, heartbeatDetails (payloads), cancelAfter
     * (heartbeat count after which cancellation is reported).
     */
    async run(type, args, { attempt = 1, heartbeatDetails = [], cancelAfter = null } = {}) {
      const heartbeats = [];
      const logs = [];
      let cancelled = false;
      const now = BigInt(Date.now());
      const context = {
        info: () => ({
          namespace: 'default', taskQueue: 'q', activityId: 'act-1', activityType: type, attempt,
          taskToken: enc.encode('token-1'), scheduledMs: now, startedMs: now,
          deadlineMs: undefined, heartbeatTimeoutMs: undefined, heartbeatDetails,
          workflowId: undefined, workflowType: undefined, workerTaskQueue: 'worker-q',
        }),
        heartbeat: (details) => {
          heartbeats.push(details.map(showPayload));
          if (cancelAfter !== null && heartbeats.length >= cancelAfter) cancelled = true;
          return cancelled;
        },
        isCancelled: () => cancelled,
        log: (level, message) => logs.push([level, message]),
      };
      const acts = await instance(context);
      const started = performance.now();
      const report = {};
      try {
        report.ok = showPayload(await acts.run(type, args));
      } catch (e) {
        report.err = showError(e);
      }
      report.ms = Math.round(performance.now() - started);
      report.heartbeats = heartbeats;
      report.logs = logs;
      return report;
    },
  };
}
