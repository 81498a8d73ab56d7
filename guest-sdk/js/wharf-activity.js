// Wharf activity kit for JavaScript (componentize-js, world wharf:activity/activity).
//
// User code lives in ACTIVITY_DIR/activities.js:
//
//   import { info, heartbeat, log, config, ApplicationError } from 'wharf-activity';
//   export const activities = {
//     greet(name) { return `Hello, ${name}!`; },
//     async 'fail-typed'({ error_type }) { throw ApplicationError.retryable('...', error_type); },
//   };
//
// scripts/build-js generates an entry module that exports the WIT interface
// `activities` ({ activityTypes, run }) by dispatching to that object (see
// `exportActivities` below). Each key of the object is an activity type.
//
// Payloads follow Temporal's default converter. Arguments: `json/plain` ->
// JSON.parse, `binary/plain` -> Uint8Array, `binary/null` -> null, anything
// else -> InvalidArgument. Results and details: Uint8Array/ArrayBuffer ->
// `binary/plain`, a `Payload` instance -> unchanged, anything else (undefined
// and null become JSON `null`) -> `json/plain` via JSON.stringify.
import * as context from 'wharf:activity/context@0.1.0';
import * as hostConfig from 'wharf:activity/config@0.1.0';
import * as hostCache from 'wharf:activity/cache@0.1.0';

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder('utf-8', { fatal: true });
const JSON_PLAIN = 'json/plain';
const BINARY_PLAIN = 'binary/plain';
const BINARY_NULL = 'binary/null';

/** A raw payload, passed through unchanged when returned or heartbeated. */
export class Payload {
  /** @param {[string, Uint8Array][]} metadata @param {Uint8Array} data */
  constructor(metadata, data) {
    this.metadata = metadata;
    this.data = data;
  }
  /** The `encoding` metadata value, '' when absent. */
  get encoding() {
    const entry = this.metadata.find(([key]) => key === 'encoding');
    return entry ? fromUtf8.decode(entry[1]) : '';
  }
  static of(encoding, data = new Uint8Array()) {
    return new Payload([['encoding', utf8.encode(encoding)]], data);
  }
  /** Temporal's encoding of "no value". */
  static binaryNull() {
    return Payload.of(BINARY_NULL);
  }
}

class PayloadDecodeError extends Error {}

/** Decodes one WIT payload ({metadata, data}) to a JS value. */
export function decodePayload(p) {
  const entry = p.metadata.find(([key]) => key === 'encoding');
  let encoding = '';
  try {
    encoding = entry ? fromUtf8.decode(entry[1]) : '';
  } catch {
    throw new PayloadDecodeError('payload encoding is not UTF-8');
  }
  if (encoding === JSON_PLAIN) {
    try {
      return JSON.parse(fromUtf8.decode(p.data));
    } catch (e) {
      throw new PayloadDecodeError(`malformed json/plain payload: ${e.message}`);
    }
  }
  if (encoding === BINARY_NULL) return null;
  if (encoding === BINARY_PLAIN) return new Uint8Array(p.data);
  throw new PayloadDecodeError(`unsupported payload encoding ${encoding || '(none)'}`);
}

/** Encodes one JS value to a payload. */
export function encodePayload(value) {
  if (value instanceof Payload) return value;
  if (value instanceof Uint8Array) return Payload.of(BINARY_PLAIN, value);
  if (value instanceof ArrayBuffer) return Payload.of(BINARY_PLAIN, new Uint8Array(value));
  if (ArrayBuffer.isView(value)) {
    return Payload.of(BINARY_PLAIN, new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
  }
  const text = JSON.stringify(value === undefined ? null : value);
  if (text === undefined) throw new TypeError(`cannot encode a ${typeof value} as JSON`);
  return Payload.of(JSON_PLAIN, utf8.encode(text));
}

/** A failure with a type, details and retry hints (Temporal's ApplicationFailure). */
export class ApplicationError extends Error {
  /**
   * @param {string} message
   * @param {{type?: string, nonRetryable?: boolean, details?: any[],
   *          nextRetryDelay?: number}} [options] nextRetryDelay in ms
   */
  constructor(message, { type = '', nonRetryable = false, details = [], nextRetryDelay } = {}) {
    super(message);
    this.name = 'ApplicationError';
    this.type = type;
    this.nonRetryable = nonRetryable;
    this.details = details;
    this.nextRetryDelay = nextRetryDelay;
  }
  static retryable(message, type = '', ...details) {
    return new ApplicationError(message, { type, details });
  }
  static nonRetryable(message, type = '', ...details) {
    return new ApplicationError(message, { type, details, nonRetryable: true });
  }
}

/** Throw to report that the attempt stopped because cancellation was requested. */
export class CancelledError extends Error {
  constructor(message = 'cancelled') {
    super(message);
    this.name = 'CancelledError';
  }
}

/** Thrown by completeAsync(): the result is delivered later by task token or id. */
export class CompleteAsyncError extends Error {
  constructor() {
    super('will complete asynchronously');
    this.name = 'CompleteAsyncError';
  }
}

/** Ends the attempt as "will complete asynchronously". Never returns. */
export function completeAsync() {
  throw new CompleteAsyncError();
}

let infoCache = null;

function decodeDetail(p) {
  try {
    return decodePayload(p);
  } catch {
    return new Payload(p.metadata, p.data);
  }
}

const optNumber = (v) => (v === undefined || v === null ? null : Number(v));

/**
 * Describes the current attempt (cached for the attempt). Times are ms since
 * the Unix epoch as numbers; heartbeatDetails are decoded (a detail with an
 * unknown encoding stays a Payload).
 */
export function info() {
  if (infoCache === null) {
    const i = context.info();
    infoCache = Object.freeze({
      namespace: i.namespace,
      taskQueue: i.taskQueue,
      activityId: i.activityId,
      activityType: i.activityType,
      attempt: i.attempt,
      taskToken: i.taskToken,
      scheduledMs: Number(i.scheduledMs),
      startedMs: Number(i.startedMs),
      deadlineMs: optNumber(i.deadlineMs),
      heartbeatTimeoutMs: optNumber(i.heartbeatTimeoutMs),
      heartbeatDetails: i.heartbeatDetails.map(decodeDetail),
      workflowId: i.workflowId ?? null,
      workflowType: i.workflowType ?? null,
      workerTaskQueue: i.workerTaskQueue,
    });
  }
  return infoCache;
}

/** The decoded details of the last heartbeat of an earlier attempt ([] if none). */
export function heartbeatDetails() {
  return [...info().heartbeatDetails];
}

/**
 * Records progress; each detail becomes one payload. Returns true once
 * cancellation was requested: stop and throw CancelledError.
 */
export function heartbeat(...details) {
  return context.heartbeat(details.map(encodePayload));
}

/** True once cancellation of the activity was requested. */
export function isCancelled() {
  return context.isCancelled();
}

function format(args) {
  return args
    .map((a) => {
      if (typeof a === 'string') return a;
      if (a instanceof Error) return a.stack || String(a);
      try {
        return JSON.stringify(a) ?? String(a);
      } catch {
        return String(a);
      }
    })
    .join(' ');
}

/**
 * The namespace's configuration variables (secrets among them) granted to
 * this module, read through the host's `config` interface, never the
 * environment. `config.get(key)` is the value, or null if the namespace has
 * no such variable; a variable that exists but is not granted to this module
 * throws a non-retryable ApplicationError of type `ConfigDenied`.
 */
export const config = Object.freeze({
  get(key) {
    try {
      return hostConfig.get(String(key)) ?? null;
    } catch (e) {
      // componentize-js throws err(E) of a result as an Error whose
      // `payload` is E, here the variant config-error.
      const err = e?.payload ?? e;
      if (err?.tag === 'denied') {
        throw ApplicationError.nonRetryable(
          `configuration variable ${JSON.stringify(String(key))} is not granted to this module`,
          'ConfigDenied',
        );
      }
      throw ApplicationError.retryable(`configuration unavailable: ${err?.val ?? err}`, 'ConfigUnavailable');
    }
  },
  /** Names of the variables granted to this module, sorted. */
  grantedKeys: () => [...hostConfig.grantedKeys()],
});

/**
 * The process cache (WIT `cache`): bytes kept for later attempts of this
 * module on the same process, until evicted or the process stops. Module
 * variables never survive an attempt; this is the one deliberate exception.
 * Code must work on a miss; route follow-ups to `info().workerTaskQueue` to
 * find a warm cache.
 */
export const cache = Object.freeze({
  /** The bytes under `key` (a Uint8Array), or null. */
  get: (key) => hostCache.get(String(key)) ?? null,
  /** Stores bytes (a Uint8Array or string) under `key`. */
  set(key, value) {
    const bytes = typeof value === 'string' ? utf8.encode(value) : new Uint8Array(value);
    try {
      hostCache.set(String(key), bytes);
    } catch (e) {
      const err = e?.payload ?? e;
      throw ApplicationError.nonRetryable(
        `value too large for the cache (budget ${err?.val ?? '?'} bytes)`,
        'CacheError',
      );
    }
  },
  /** Removes `key`. */
  delete: (key) => hostCache.delete(String(key)),
  /** The JSON value under `key`, or null when absent or not JSON. */
  getJson(key) {
    const bytes = cache.get(key);
    if (bytes === null) return null;
    try {
      return JSON.parse(fromUtf8.decode(bytes));
    } catch {
      return null;
    }
  },
  /** Stores `value` as JSON under `key`. */
  setJson: (key, value) => cache.set(key, JSON.stringify(value)),
});

/** The attempt log: log.info('x', obj) joins its arguments like console.log. */
export const log = Object.freeze({
  trace: (...args) => context.log('trace', format(args)),
  debug: (...args) => context.log('debug', format(args)),
  info: (...args) => context.log('info', format(args)),
  warn: (...args) => context.log('warn', format(args)),
  error: (...args) => context.log('error', format(args)),
});

/**
 * Waits `ms` milliseconds without burning CPU (setTimeout; needs the
 * componentize-js `clocks` feature, which build-js keeps). Returns a promise,
 * so the activity must be async.
 */
export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

let buildOptions = { http: false };

/**
 * True when the module was built with `build-js --http`: fetch() then works
 * (for the hosts the namespace allows). Without it fetch() exists but traps.
 */
export function hasHttp() {
  return buildOptions.http;
}

const RAW = Symbol('wharf.rawArgs');

/**
 * Marks an activity that receives its arguments as undecoded Payload objects
 * (for pass-through or benchmark activities).
 */
export function rawArgs(fn) {
  fn[RAW] = true;
  return fn;
}

// ---- the export side ----------------------------------------------------

const failed = (message, errorType, nonRetryable, details = [], nextRetryDelayMs) => ({
  tag: 'failed',
  val: { message, errorType, nonRetryable, details, nextRetryDelayMs },
});

// componentize-js turns a value thrown from an export that returns
// result<_, E> into err(value) when the value is not an Error (an Error with a
// `payload` property gives err(payload); any other Error traps).
function toActivityError(e) {
  if (e instanceof CancelledError) return { tag: 'cancelled' };
  if (e instanceof CompleteAsyncError) return { tag: 'will-complete-async' };
  if (e instanceof ApplicationError) {
    let details = [];
    try {
      details = (e.details ?? []).map(encodePayload);
    } catch (enc) {
      log.warn(`could not encode ApplicationError details: ${enc}`);
    }
    const delay = e.nextRetryDelay;
    const nextRetryDelayMs =
      delay === undefined || delay === null ? undefined : BigInt(Math.max(0, Math.floor(Number(delay))));
    return failed(String(e.message), String(e.type ?? ''), Boolean(e.nonRetryable), details, nextRetryDelayMs);
  }
  if (e instanceof Error) {
    try {
      context.log('error', e.stack ? `${e.name}: ${e.message}\n${e.stack}` : String(e));
    } catch {}
    const type = e.constructor?.name || e.name || 'Error';
    return failed(String(e.message), type, false);
  }
  return failed(String(e), 'Error', false);
}

const isThenable = (v) => v !== null && (typeof v === 'object' || typeof v === 'function') && typeof v.then === 'function';

/**
 * Builds the WIT `activities` export from an object of activity functions.
 * Sync activities run synchronously; an activity returning a promise makes
 * `run` return a promise, which componentize-js drives to completion.
 */
export function exportActivities(userActivities, options = {}) {
  buildOptions = { ...buildOptions, ...options };
  if (userActivities === null || typeof userActivities !== 'object') {
    throw new TypeError('activities.js must `export const activities = { name(arg) { ... } }`');
  }
  const table = new Map();
  for (const [name, fn] of Object.entries(userActivities)) {
    if (typeof fn === 'function') table.set(name, fn);
  }
  const exported = {
    activityTypes() {
      return [...table.keys()];
    },
    run(activityType, args) {
      infoCache = null;
      const fn = table.get(activityType);
      if (fn === undefined) {
        throw failed(
          `unknown activity type '${activityType}' (this module has: ${[...table.keys()].join(', ') || 'none'})`,
          'UnknownActivityType',
          true,
        );
      }
      let values;
      if (fn[RAW]) {
        values = args.map((p) => new Payload(p.metadata, p.data));
      } else {
        try {
          values = args.map(decodePayload);
        } catch (e) {
          if (e instanceof PayloadDecodeError) throw failed(e.message, 'InvalidArgument', true);
          throw toActivityError(e);
        }
        if (values.length < fn.length) {
          throw failed(
            `${activityType}: expected ${fn.length} argument(s), got ${values.length}`,
            'InvalidArgument',
            true,
          );
        }
      }
      let result;
      try {
        result = fn.apply(userActivities, values);
      } catch (e) {
        throw toActivityError(e);
      }
      if (isThenable(result)) {
        return Promise.resolve(result)
          .then(encodePayload)
          .catch((e) => {
            throw toActivityError(e);
          });
      }
      try {
        return encodePayload(result);
      } catch (e) {
        throw toActivityError(e);
      }
    },
  };
  warmUp(table, exported.run);
  keptWarm = bindingsWarmUp();
  return exported;
}

// What the bindings' warm-up made, kept for the life of the snapshot.
let keptWarm = null;

// Not a string: no activity type can collide with it.
const WARM_UP = Symbol('wharf.warmUp');

// Runs `run` on a private activity type, raw and with a JSON argument, while
// componentize-js snapshots the module: the engine's inline caches for the
// dispatch path are then already in the snapshot instead of being built
// again by every attempt (measured on the noop example: 4% of the attempt
// and 4 of its page faults). The user's functions are not run.
function warmUp(table, run) {
  const arg = encodePayload({ warm: [1, 'up'] });
  const echo = (...a) => (a.length ? a[0] : null);
  try {
    for (const fn of [rawArgs((...a) => echo(...a)), echo]) {
      table.set(WARM_UP, fn);
      for (let i = 0; i < 50; i++) {
        run(WARM_UP, []);
        run(WARM_UP, [arg]);
      }
    }
  } finally {
    table.delete(WARM_UP);
  }
}

// componentize-js runs its generated bindings (the code that lifts an
// export's arguments and lowers its result) in a realm of their own, apart
// from the module's. A realm makes its built-in classes (Promise,
// Uint8Array, async functions, iterators, saved stacks) and self-hosted
// functions on first use, so a fresh instance of a snapshot in which the
// bindings never ran builds them again in every attempt: more than half of
// a JS noop attempt (`perf`, 2026-11-30). The bindings' functions reach us as
// the imported host functions, so their realm's Function constructor is
// theirs: the code below, run there while the snapshot is taken, does what
// the bindings do per call (typed-array views and copies, DataView reads,
// records and tuples, array destructuring, an async function awaiting a
// value and a rejection, a TypeError). What it returns is kept alive so
// that the engine's caches of those objects' shapes outlive the snapshot's
// collection.
const BINDINGS_WARM_UP = `
  const buffer = new ArrayBuffer(64);
  const view = new DataView(buffer);
  view.setUint32(0, 8, true);
  const list = [];
  for (let i = 0; i < 2; i++) {
    const bytes = new Uint8Array(buffer, view.getUint32(0, true), 4);
    const copy = new Uint8Array(buffer.slice(8, 12));
    list.push([String(i), copy], { metadata: [[\`k\${i}\`, bytes]], data: copy });
  }
  const [first, second] = list;
  const { metadata, data } = list[1];
  for (const [key, value] of metadata) void (key.length + value.byteLength);
  try { throw new TypeError(\`list pointer [\${first.length}] is not aligned\`); } catch (e) { void e.message; }
  const lift = async (value) => {
    let ret;
    try {
      const v = await value;
      ret = v !== null && typeof v === 'object' && (v.tag === 'ok' || v.tag === 'err') ? v : { tag: 'ok', val: v };
    } catch (e) {
      ret = { tag: 'err', val: e };
    }
    return ret;
  };
  const ok = lift(1);
  const err = lift(Promise.reject(new Error('warm-up')));
  ok.then(() => {}, () => {});
  err.then(() => {}, () => {});
  return [list, first, second, data, ok, err, Array.isArray(list)];
`;

function bindingsWarmUp() {
  const BindingsFunction = Object.getPrototypeOf(context.info).constructor;
  if (BindingsFunction === Function) return null;
  try {
    return new BindingsFunction(BINDINGS_WARM_UP)();
  } catch {
    // Only a speed-up: a build whose engine refuses it runs as before.
    return null;
  }
}
