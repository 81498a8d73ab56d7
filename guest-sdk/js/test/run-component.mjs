// Runs one attempt of a wharf:activity component under Node (see harness.mjs).
//
//   node --experimental-wasm-extended-const guest-sdk/js/test/run-component.mjs \
//     FILE.wasm [TYPE] [--input JSON]... [--raw-input ENCODING:BASE64]...
//     [--heartbeat-details JSON] [--attempt N] [--cancel-after N]
//
// Prints {"types": [...], "ok": value} or {"types": [...], "err": ...} as JSON.
import { jsonPayload, loadComponent, rawPayload } from './harness.mjs';

const argv = process.argv.slice(2);
const file = argv.shift();
const type = argv[0] && !argv[0].startsWith('--') ? argv.shift() : null;
const inputs = [];
const opts = {};
while (argv.length) {
  const flag = argv.shift();
  const v = argv.shift();
  if (flag === '--input') inputs.push(jsonPayload(JSON.parse(v)));
  else if (flag === '--raw-input') {
    const i = v.indexOf(':');
    inputs.push(rawPayload(v.slice(0, i), new Uint8Array(Buffer.from(v.slice(i + 1), 'base64'))));
  } else if (flag === '--heartbeat-details') opts.heartbeatDetails = [jsonPayload(JSON.parse(v))];
  else if (flag === '--attempt') opts.attempt = Number(v);
  else if (flag === '--cancel-after') opts.cancelAfter = Number(v);
  else {
    console.error(`unknown flag ${flag}`);
    process.exit(2);
  }
}
const component = await loadComponent(file);
const report = { types: await component.activityTypes() };
if (type !== null) Object.assign(report, await component.run(type, inputs, opts));
console.log(JSON.stringify(report));
