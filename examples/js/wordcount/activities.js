// wordcount: counts words item by item, heartbeating progress so that a
// retried attempt resumes where the last one stopped.
//
// Argument: {"items": [string, ...], "step_ms": int = 0, "fail_at": int | null}.
import { ApplicationError, CancelledError, heartbeat, heartbeatDetails, info, sleep } from 'wharf-activity';

// Unicode White_Space, as Rust's str::split_whitespace uses (JavaScript's \s
// differs: it has U+FEFF and lacks U+0085); every language must agree.
const WHITESPACE = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

const invalid = (message) => ApplicationError.nonRetryable(message, 'InvalidArgument');

function optInt(value, what, dflt) {
  if (value === undefined || value === null) return dflt;
  if (!Number.isInteger(value)) throw invalid(`${what} must be an integer`);
  return value;
}

export const activities = {
  async wordcount(arg) {
    if (arg === null || typeof arg !== 'object' || Array.isArray(arg)) {
      throw invalid('wordcount takes {"items": [string], "step_ms": int, "fail_at": int|null}');
    }
    const { items } = arg;
    if (!Array.isArray(items) || !items.every((s) => typeof s === 'string')) {
      throw invalid('items must be a list of strings');
    }
    const stepMs = optInt(arg.step_ms, 'step_ms', 0);
    const failAt = optInt(arg.fail_at, 'fail_at', null);

    let start = 0;
    let total = 0;
    const [progress] = heartbeatDetails();
    if (progress !== null && typeof progress === 'object') {
      start = Number(progress.next ?? 0);
      total = Number(progress.words ?? 0);
    }
    const { attempt } = info();

    let processed = 0;
    for (let i = start; i < items.length; i++) {
      if (failAt === i && attempt === 1) {
        throw ApplicationError.retryable(`simulated crash before item ${i}`, 'SimulatedCrash');
      }
      total += items[i].split(WHITESPACE).filter((w) => w.length > 0).length;
      processed += 1;
      if (heartbeat({ next: i + 1, words: total })) throw new CancelledError();
      if (stepMs > 0) await sleep(stepMs);
    }
    return { words: total, items: items.length, resumed_from: start, processed };
  },
};
