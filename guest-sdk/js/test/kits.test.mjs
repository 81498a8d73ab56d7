// Tests of the JS and Python kits and of the polyglot examples, run under the
// Node harness (no Wharf host needed):
//
//   scripts/build-polyglot-examples        # once: build/examples/{js,python}
//   node --experimental-wasm-extended-const --test guest-sdk/js/test/kits.test.mjs
//
// The kitcheck modules (js/test/kitcheck, python/tests/kitcheck) are built
// into a temporary directory by this test (about 20 s each).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jsonPayload, loadComponent, rawPayload, showPayload } from './harness.mjs';

const root = resolve(fileURLToPath(import.meta.url), '../../../..');
const examples = process.env.WHARF_EXAMPLES_DIR ?? join(root, 'build/examples');
const LANGS = ['js', 'python'];
const json = (...values) => values.map(jsonPayload);
const failed = (type, message, nonRetryable = false, details = [], nextRetryDelayMs = null) => ({
  failed: { message, type, nonRetryable, details, nextRetryDelayMs },
});

describe('kit semantics', () => {
  const built = {};
  const work = mkdtempSync(join(tmpdir(), 'wharf-kitcheck-'));
  before(() => {
    const out = (lang) => join(work, `${lang}.wasm`);
    execFileSync(join(root, 'scripts/build-js'), [join(root, 'guest-sdk/js/test/kitcheck'), '-o', out('js')], { stdio: 'inherit' });
    execFileSync(join(root, 'scripts/build-python'), [join(root, 'guest-sdk/python/tests/kitcheck'), '-o', out('python')], { stdio: 'inherit' });
    for (const lang of LANGS) built[lang] = out(lang);
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  for (const lang of LANGS) {
    test(`${lang}: payloads, errors, context`, async () => {
      const c = await loadComponent(built[lang]);
      const run = (type, args = [], opts) => c.run(type, args, opts);
      assert.deepEqual(await c.activityTypes(),
        ['echo_types', 'identity', 'two', 'nothing', 'boom', 'cancel', 'later', 'app-error', 'about', 'chatty']);

      const args = [...json('s', 1, 2.5, true, null, [1], { a: 1 }), rawPayload('binary/null'),
        rawPayload('binary/plain', new Uint8Array([1, 2, 3]))];
      assert.deepEqual((await run('echo_types', args)).ok,
        ['string', 'number', 'number', 'boolean', 'null', 'array', 'object', 'null', 'bytes']);
      // bytes come back as binary/plain, null/None as json null
      assert.deepEqual((await run('identity', [rawPayload('binary/plain', new Uint8Array([7]))])).ok,
        { encoding: 'binary/plain', data: 'Bw==' });
      assert.equal((await run('nothing')).ok, null);
      assert.deepEqual((await run('identity', json({ é: ['ü'] }))).ok, { é: ['ü'] });

      const bad = (r) => {
        assert.equal(r.err?.failed?.type, 'InvalidArgument', JSON.stringify(r));
        assert.equal(r.err.failed.nonRetryable, true);
      };
      bad(await run('identity', [rawPayload('json/protobuf', new Uint8Array([1]))]));
      bad(await run('identity', [rawPayload('json/plain', new TextEncoder().encode('{nope'))]));
      bad(await run('two', json(1)));
      assert.deepEqual((await run('missing')).err.failed.type, 'UnknownActivityType');
      assert.equal((await run('missing')).err.failed.nonRetryable, true);

      const boom = (await run('boom')).err.failed;
      assert.equal(boom.type, lang === 'js' ? 'RangeError' : 'KeyError');
      assert.equal(boom.nonRetryable, false);
      assert.equal((await run('cancel')).err, 'cancelled');
      assert.equal((await run('later')).err, 'will-complete-async');
      assert.deepEqual((await run('app-error')).err,
        failed('Custom', 'custom', true, [{ k: 1 }, { encoding: 'binary/plain', data: 'AQI=' }], 1500));

      const about = await run('about', [], { attempt: 3, heartbeatDetails: json({ next: 2 }) });
      assert.deepEqual(about.ok, {
        attempt: 3, activity_id: 'act-1', activity_type: 'about', task_token: 'token-1',
        heartbeat_details: [{ next: 2 }], deadline_ms: null, workflow_id: null,
      });

      const chatty = await run('chatty', [], { cancelAfter: 1 });
      assert.deepEqual(chatty.ok, [true, true]);
      assert.deepEqual(chatty.heartbeats, [['a', 1, { x: 2 }]]);
      assert.deepEqual(chatty.logs.map(([level]) => level), ['trace', 'debug', 'info', 'warn', 'error']);
    });
  }
});

// The behaviour every language's example must share (examples/python/README.md).
const words = { items: ['a b  c', '', ' d\te\u0085f '] };
const CASES = [
  ['greet', 'greet', json('Ada'), {}, { ok: 'Hello, Ada!' }],
  ['greet', 'probe', json({ what: 'file' }), {}, (r) => assert.equal(r.ok.denied, true)],
  ['greet', 'probe', json({ what: 'env' }), {}, (r) => assert.equal(r.ok.denied, true)],
  ['greet', 'probe', json({ what: 'net' }), {}, (r) => assert.equal(r.ok.denied, true)],
  ['wordcount', 'wordcount', json(words), {}, { ok: { words: 6, items: 3, resumed_from: 0, processed: 3 } }],
  ['wordcount', 'wordcount', json({ items: ['a b', 'c', 'd e f'], fail_at: 1 }), {},
    { err: failed('SimulatedCrash', 'simulated crash before item 1') }],
  ['wordcount', 'wordcount', json({ items: ['a b', 'c', 'd e f'], fail_at: 1 }),
    { attempt: 2, heartbeatDetails: json({ next: 1, words: 2 }) },
    { ok: { words: 6, items: 3, resumed_from: 1, processed: 2 } }],
  ['wordcount', 'wordcount', json({ items: ['a', 'b', 'c'] }), { cancelAfter: 2 }, { err: 'cancelled' }],
  ['flaky', 'flaky', json({ succeed_on_attempt: 3, retry_delay_ms: 250 }), { attempt: 2 },
    { err: failed('FlakyError', 'attempt 2 failed', false, [{ attempt: 2 }], 250) }],
  ['flaky', 'flaky', json({ succeed_on_attempt: 3, retry_delay_ms: null }), { attempt: 1 },
    { err: failed('FlakyError', 'attempt 1 failed', false, [{ attempt: 1 }]) }],
  ['flaky', 'flaky', json({ succeed_on_attempt: 3 }), { attempt: 3 }, { ok: { attempt: 3 } }],
  ['flaky', 'reject', json({ reason: 'no stock' }), {},
    { err: failed('InvalidOrder', 'order rejected: no stock', true, [{ reason: 'no stock' }]) }],
  ['flaky', 'fail-typed', json({ error_type: 'Boom' }), {}, { err: failed('Boom', 'failed with Boom') }],
  ['noop', 'noop', json(1, 2), {}, { ok: { encoding: 'binary/null', data: '' } }],
  // A fresh instance per run: the module-level counter always starts at 0.
  ['noop', 'count', [], {}, { ok: 1 }],
  ['noop', 'count', json(3), { attempt: 2 },
    { err: failed('CountFailed', 'attempt 2 failed with count 1', false, [{ count: 1 }]) }],
];

describe('examples', () => {
  for (const lang of LANGS) {
    for (const [name, type, args, opts, want] of CASES) {
      const file = join(examples, lang, `${name}.wasm`);
      test(`${lang} ${name}: ${type} ${JSON.stringify(args.map(showPayload))} ${JSON.stringify({ ...opts, heartbeatDetails: opts.heartbeatDetails?.map(showPayload) })}`, { skip: !existsSync(file) && `${file} not built` }, async () => {
        const r = await (await loadComponent(file)).run(type, args, opts);
        if (typeof want === 'function') want(r);
        else assert.deepEqual(want.ok !== undefined ? { ok: r.ok } : { err: r.err }, want);
      });
    }
  }
});
